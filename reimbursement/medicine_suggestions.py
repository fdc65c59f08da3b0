"""``GET /medicaments?q=…&page=…``: the reimbursable products a typed text finds, as JSON, for
the script that suggests them while a doctor types and shows which product the form will take
(``fse/web/static/medicines.js``). The same matcher as the form (``resolve``), so what the
script shows is what the review page takes. Doctors and pharmacists open it
(``fse.security.access.PAGES``); it names no insured.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from fse.store.query import whole_number
from fse.web.formats import mad
from fse.web.login import page_session
from reimbursement.medicine_search import QUERY_MAX, Entry, index_of

PAGE_SIZE = 20
UNKNOWN_PRICE = "non publié"
router = APIRouter(include_in_schema=False)


def product(entry: Entry) -> dict[str, Any]:
    m = entry.medicine
    return {
        "ean": m.ean,
        "label": entry.label,
        "name": m.name,
        "dci": m.dci,
        "form": m.form,
        "strength": m.strength,
        "presentation": m.presentation,
        "kind": m.kind,
        "ppv": None if m.ppv is None else f"{m.ppv:.2f}",
        "pbr": None if m.pbr is None else f"{m.pbr:.2f}",
        "ppv_text": UNKNOWN_PRICE if m.ppv is None else mad(m.ppv),
        "pbr_text": UNKNOWN_PRICE if m.pbr is None else mad(m.pbr),
    }


@router.get("/medicaments")
async def suggestions(request: Request) -> Response:
    session = await page_session(request)
    if isinstance(session, Response):
        return session
    settlement = request.app.state.settlement
    today = datetime.now(UTC).astimezone(settlement.schedule.zone).date()
    text = request.query_params.get("q", "")[:QUERY_MAX]
    raw_page = request.query_params.get("page", "1")
    number = whole_number(raw_page)  # ASCII digits only: "²".isdigit() but int("²") fails
    page = number if number is not None and 0 < number < 10_000 else 1
    found = index_of(settlement.books.medicines.in_force(today)).search(text)
    ranked = found.ranked
    pages = max(1, -(-len(ranked) // PAGE_SIZE))
    shown = ranked[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    choice = found.choice
    following = f"/medicaments?{urlencode({'q': text, 'page': page + 1})}"
    body = {
        "q": text,
        "choice": product(choice) if choice is not None else None,
        "message": found.why if text.strip() else "",
        "total": len(ranked),
        "page": page,
        "pages": pages,
        "next": following if page < pages else None,
        "results": [product(entry) for entry in shown],
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
