"""What the suggestion endpoints of the doctor's and pharmacist's fields share (``/medicaments``,
``/actes``): the page asked for, the day's reference data, and one JSON answer shape that the
form's script (``fse/web/static/suggestions.js``) reads the same way for every field: per
result the ``value`` the field takes and the ``text`` shown beside it, and ``said``, the line
under the field naming what the form will take."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import JSONResponse

from fse.store.query import whole_number
from reimbursement.word_search import QUERY_MAX, Found, Labelled

PAGE_SIZE = 20
E = TypeVar("E", bound=Labelled)


def query_of(request: Request) -> str:
    return request.query_params.get("q", "")[:QUERY_MAX]


def page_of(request: Request) -> int:
    """The page asked for: ASCII digits within bounds ("²".isdigit() but int("²") fails), else
    the first."""
    number = whole_number(request.query_params.get("page", "1"))
    return number if number is not None and 0 < number < 10_000 else 1


def answer(
    path: str,
    text: str,
    page: int,
    found: Found[E],
    render: Callable[[E], dict[str, Any]],
    said: Callable[[E], str],
) -> JSONResponse:
    """The JSON answer: the choice (if one), why not, and one page of what was found."""
    ranked = found.ranked
    pages = max(1, -(-len(ranked) // PAGE_SIZE))
    shown = ranked[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    choice = found.choice
    following = f"{path}?{urlencode({'q': text, 'page': page + 1})}"
    body = {
        "q": text,
        "choice": render(choice) if choice is not None else None,
        "said": said(choice) if choice is not None else "",
        "message": found.why if text.strip() else "",
        "total": len(ranked),
        "page": page,
        "pages": pages,
        "next": following if page < pages else None,
        "results": [render(entry) for entry in shown],
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
