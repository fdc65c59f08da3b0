"""French HTML error pages for the web screens; the API keeps its OperationOutcomes.

A browser that follows a bad link (``/labo``), opens a sheet that is not there or meets a
failure must land on a page of the platform, in French, with a way back, and never on English
FHIR JSON or a traceback. Which one answers is decided by the path (``API_PREFIXES`` always
answer JSON) and by what the client asks for (``Accept: text/html``).
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import Response

from fse.security.sessions import COOKIE_NAME, Session, session_for
from fse.web.state import engine_of
from fse.web.templates import TEMPLATES

log = logging.getLogger(__name__)

API_PREFIXES = ("/fhir", "/auth/token", "/health", "/ready", "/openapi.json", "/.well-known")
"""Doors for systems: their errors stay OperationOutcomes (or JSON), whatever the Accept."""

TITLES = {
    400: "Requête incorrecte",
    403: "Accès refusé",
    404: "Page introuvable",
    405: "Action non prévue",
    409: "Action impossible pour l'instant",
    413: "Envoi trop volumineux",
    422: "Données refusées",
    429: "Trop de demandes",
    500: "Erreur interne",
    503: "Service momentanément indisponible",
}
MESSAGES = {
    400: "La demande envoyée n'est pas comprise par la plateforme.",
    403: "Votre profil ne donne pas accès à cette page.",
    404: "Cette adresse ne correspond à aucune page de la plateforme.",
    405: "Cette page ne s'utilise pas ainsi : revenez à votre espace et recommencez.",
    409: "La donnée a changé entre-temps : rechargez la page avant de recommencer.",
    413: "Le formulaire envoyé est trop volumineux.",
    422: "Les données envoyées ne peuvent pas être acceptées.",
    429: "Trop de demandes en peu de temps : patientez un instant avant de recommencer.",
    500: (
        "Une erreur inattendue s'est produite : rien n'a été enregistré. Réessayez ; si "
        "l'erreur se répète, notez l'heure et contactez l'assistance CNSS."
    ),
    503: (
        "La plateforme ne peut pas répondre pour l'instant : rien n'a été fait. Réessayez "
        "dans quelques instants."
    ),
}


def is_api(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in API_PREFIXES)


def wants_html(request: Request) -> bool:
    """A browser on a screen: not an API door, and HTML among what it accepts."""
    return not is_api(request.url.path) and "text/html" in request.headers.get("accept", "")


async def _session(request: Request) -> Session | None:
    """The signed-in user, for the header and the way back; an error page never fails on it
    (the database may be what failed)."""
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        return None
    try:
        return await session_for(engine_of(request), token)
    except Exception:  # the error page must still answer
        log.debug("no session for the error page", exc_info=True)
        return None


async def error_page(
    request: Request,
    status: int,
    message: str = "",
    headers: dict[str, str] | None = None,
    title: str = "",
) -> Response:
    """The page for ``status``: ``message`` (already in French, naming nothing internal) or
    the status's own, and links back to the user's space and to the home page."""
    session = await _session(request)
    context = {
        "title": title or TITLES.get(status, "Erreur"),
        "status": status,
        "message": message or MESSAGES.get(status, MESSAGES[400]),
        "session": session,
    }
    return TEMPLATES.TemplateResponse(
        request, "erreur.html", context, status_code=status, headers=headers
    )
