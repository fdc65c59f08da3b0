"""The doctor's pages (French, server-rendered, usable without JavaScript)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from fse.security.users import Role
from fse.web.login import session_with_role
from fse.web.templates import TEMPLATES
from prescriber.lookup import NotAnIdentifier, find_insured

router = APIRouter(include_in_schema=False)


@router.get("/medecin", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    session = await session_with_role(request, Role.PRESCRIBER)
    if isinstance(session, Response):
        return session
    return TEMPLATES.TemplateResponse(
        request, "medecin_accueil.html", {"title": "Espace médecin", "session": session}
    )


@router.get("/medecin/assure", response_class=HTMLResponse)
async def insured(request: Request) -> Response:
    session = await session_with_role(request, Role.PRESCRIBER)
    if isinstance(session, Response):
        return session
    text = request.query_params.get("q", "")
    settlement = request.app.state.settlement
    today = datetime.now(UTC).astimezone(settlement.schedule.zone).date()
    error, found = "", []
    reader = session.user.practitioner or f"user:{session.user.username}"
    try:
        found = await find_insured(request.app.state.fhir, settlement.books, text, today, reader)
    except NotAnIdentifier as problem:
        error = str(problem)
    if not error and not found:
        error = f"Aucun assuré avec l'identifiant {text.strip()}."
    return TEMPLATES.TemplateResponse(
        request,
        "medecin_assure.html",
        {
            "title": "Recherche d'un assuré",
            "session": session,
            "q": text,
            "error": error,
            "found": found,
            "today": today,
        },
        status_code=200 if found else (400 if error.startswith("Saisissez") else 404),
    )
