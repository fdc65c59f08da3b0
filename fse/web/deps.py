"""The pages' dependencies (FastAPI ``Depends``, for HTML screens only; ``/fhir`` has none): a
page declares ``session: SignedIn`` or ``form: Posted`` and receives the typed value, or the
request ends before the page runs with the answer it always had: the login page for a visitor,
the French 403 page for a role the section is not open to, the French 403 page for a form
without this session's CSRF token.

Who opens which page is decided here by ``fse.security.access.PAGES`` from the request's
path, as before: the one access model stays the single source, no page names a role.

A dependency ends the request by raising ``PageRefused`` with the answer; ``answer_refusal``
(installed by ``fse.web.pages.mount``) returns it as is.
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import parse_qsl, quote

from fastapi import Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from fse.crypto.tokens import SigningKey
from fse.security.access import page_allows
from fse.security.sessions import COOKIE_NAME, Session, session_for
from fse.web.errors import error_page
from fse.web.state import engine_of
from fse.web.templates import TEMPLATES

CSRF_REFUSED = (
    "Le formulaire a expiré ou ne vient pas de cette page : rien n'a été fait. Rechargez la "
    "page puis recommencez."
)


class PageRefused(Exception):
    """A page's dependency ends the request: ``response`` is the answer (a redirect to the
    login page, a French refusal), sent as the page would have returned it."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def answer_refusal(request: Request, refused: Exception) -> Response:
    """The exception handler of ``PageRefused``: its answer, unchanged."""
    assert isinstance(refused, PageRefused)
    return refused.response


async def form_of(request: Request) -> dict[str, str]:
    """The posted form; bytes that are not UTF-8 are a 400 (a password is never checked, nor a
    value stored, with bytes replaced by U+FFFD)."""
    try:
        text = (await request.body()).decode()
        return dict(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError:
        raise HTTPException(400, "le formulaire envoyé n'est pas du texte UTF-8") from None


async def session_of(request: Request) -> Session | None:
    """The signed-in person, if any (public pages: the login form, the logout)."""
    return await session_for(engine_of(request), request.cookies.get(COOKIE_NAME))


def login_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/connexion?suite={quote(request.url.path)}", status_code=303)


async def signed_in(request: Request) -> Session:
    """The signed-in person if the access model opens this page to their role
    (``fse.security.access.PAGES``); else the login page (not signed in) or a French 403 page
    (signed in with another role, or a page the model does not list: closed by default)."""
    session = await session_of(request)
    if session is None:
        raise PageRefused(login_redirect(request))
    if not page_allows(request.url.path, session.user.role):
        raise PageRefused(
            TEMPLATES.TemplateResponse(
                request,
                "forbidden.html",
                {"title": "Accès refusé", "session": session},
                status_code=403,
            )
        )
    return session


SignedIn = Annotated[Session, Depends(signed_in)]
"""The person a page is open to (one check per request, however many dependencies ask)."""


async def posted_form(request: Request, session: SignedIn) -> dict[str, str]:
    """The submitted form, if it carries this session's CSRF token; else a French 403."""
    values = await form_of(request)
    if not secrets.compare_digest(session.csrf_token, values.get("csrf", "")):
        raise PageRefused(await error_page(request, 403, CSRF_REFUSED, title="Requête refusée"))
    return values


Posted = Annotated[dict[str, str], Depends(posted_form)]
"""A signed-in person's form, its CSRF token checked (after the access check)."""


def signing_key_of(request: Request, session: Session) -> SigningKey | None:
    """The signed-in professional's private key, for this request only."""
    return session.signing_key(request.cookies.get(COOKIE_NAME, ""))
