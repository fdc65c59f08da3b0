"""``GET /medicaments?q=…&page=…``: the reimbursable products a typed text finds, as JSON, for
the script that suggests them while a doctor types and shows which product the form will take
(``fse/web/static/suggestions.js``). The same matcher as the form (``resolve``), so what the
script shows is what the review page takes. Doctors and pharmacists open it
(``fse.security.access.PAGES``); it names no insured.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from fse.web.deps import signed_in
from fse.web.formats import mad
from reimbursement.medicine_search import Entry, index_of
from reimbursement.state import books_of, today_of
from reimbursement.suggestions import answer, page_of, query_of

UNKNOWN_PRICE = "non publié"
router = APIRouter(include_in_schema=False)


def product(entry: Entry) -> dict[str, Any]:
    m = entry.medicine
    ppv = UNKNOWN_PRICE if m.ppv is None else mad(m.ppv)
    pbr = UNKNOWN_PRICE if m.pbr is None else mad(m.pbr)
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
        "ppv_text": ppv,
        "pbr_text": pbr,
        "value": entry.label,
        "text": f"{m.dci} — {m.kind} — PPV {ppv} / PBR {pbr}",
    }


def said(entry: Entry) -> str:
    m = entry.medicine
    ppv = UNKNOWN_PRICE if m.ppv is None else mad(m.ppv)
    return f"Médicament retenu : {entry.label} — {m.dci}, {m.kind}, PPV {ppv}"


@router.get("/medicaments", dependencies=[Depends(signed_in)])
async def suggestions(request: Request) -> JSONResponse:
    medicines = books_of(request).medicines.in_force(today_of(request))
    text = query_of(request)
    found = index_of(medicines).search(text)
    return answer("/medicaments", text, page_of(request), found, product, said)
