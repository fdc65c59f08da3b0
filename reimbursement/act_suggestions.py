"""``GET /actes?q=…&page=…``: the NGAP acts a typed code or label finds, as JSON, for the script
that suggests them while a doctor types and shows which act the form will take, with its
coefficient and chapter (``fse/web/static/suggestions.js``). The same matcher as the form
(``resolve_act``). Doctors open it (``fse.security.access.PAGES``); it names no insured.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from fse.web.deps import signed_in
from fse.web.formats import number_fr
from reimbursement.act_search import NO_MATCH, SEVERAL, ActEntry, act_index, coefficient_said
from reimbursement.act_search import said as act_said
from reimbursement.state import books_of, today_of
from reimbursement.suggestions import answer, page_of, query_of
from reimbursement.word_search import Found

router = APIRouter(include_in_schema=False)


def act(entry: ActEntry) -> dict[str, Any]:
    a = entry.act
    return {
        "code": a.code,
        "label": a.label,
        "coefficient": f"{a.coefficient.normalize():f}" if a.coefficient is not None else None,
        "coefficient_text": number_fr(a.coefficient),
        "sound": a.sound,
        "default": number_fr(a.limit),  # what the form takes: a sound coefficient
        "chapter": a.chapter_letter,
        "chapter_label": a.chapter_label,
        "section_label": a.section_label,
        "source_issues": sorted(a.source_issues),
        "value": entry.value,
        "text": f"{entry.label} · {coefficient_said(a)}",
    }


def said(entry: ActEntry) -> str:
    return act_said(entry.act)


@router.get("/actes", dependencies=[Depends(signed_in)])
async def suggestions(request: Request) -> JSONResponse:
    version = books_of(request).acts.in_force(today_of(request))
    text = query_of(request)
    found = act_index(version).search(text) if version else Found(([], [], []), NO_MATCH, SEVERAL)
    return answer("/actes", text, page_of(request), found, act, said)
