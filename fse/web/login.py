"""Login, logout and the signed-in landing page (French, works without JavaScript).

CSRF: before login a double-submit cookie guards the form; after login every unsafe form carries
the session's CSRF token. Failed logins lock out per account and per address
(``fse/security/lockout.py``); successful ones never count.
"""

from __future__ import annotations

import math
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fse.addresses import client_address, client_scheme
from fse.security.lockout import start_attempt, subject_key
from fse.security.sessions import COOKIE_NAME, SESSION_LIFETIME, close_session, open_session
from fse.security.users import SIGNING_ROLES, authenticate_user, unlock_signing_key
from fse.web.deps import CSRF_REFUSED, SignedIn, form_of, session_of
from fse.web.errors import error_page
from fse.web.state import engine_of, runtime_of, settings_of
from fse.web.templates import TEMPLATES

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "fse_login_csrf"


def _secure(request: Request) -> bool:
    return client_scheme(request.scope, settings_of(request)) == "https"


def _next_page(raw: str | None) -> str:
    """Only local paths: never redirect a user to another site after login."""
    if raw and raw.startswith("/") and not raw.startswith("//") and "\\\\" not in raw:
        return raw
    return "/espace"


def _login_page(
    request: Request,
    status: int = 200,
    error: str = "",
    username: str = "",
    next_page: str = "/espace",
) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {
            "title": "Connexion",
            "error": error,
            "username": username,
            "csrf": token,
            "suite": next_page,
        },
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


def failure_limits(request: Request, username: str) -> list[tuple[str, int]]:
    """Failed logins count per account (however its name is typed) and per address."""
    settings = settings_of(request)
    account = subject_key("login-account", username.casefold())
    address = f"login-address:{client_address(request.scope, settings)}"
    return [
        (account, settings.login_failures_per_account),
        (address, settings.login_failures_per_address),
    ]


@router.get("/connexion", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    if await session_of(request) is not None:
        return RedirectResponse(_next_page(request.query_params.get("suite")), status_code=303)
    return _login_page(request, next_page=_next_page(request.query_params.get("suite")))


@router.post("/connexion", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await form_of(request)
    username, next_page = form.get("identifiant", "").strip(), _next_page(form.get("suite"))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not secrets.compare_digest(expected, form.get("csrf", "")):
        return _login_page(
            request, 403, "Le formulaire a expiré : veuillez réessayer.", username, next_page
        )
    settings = settings_of(request)
    attempt = await start_attempt(
        runtime_of(request).limiter,
        settings.login_failure_window_seconds,
        failure_limits(request, username),
    )
    if not attempt.allowed:  # the password is not even looked at
        minutes = math.ceil(attempt.retry_after / 60)
        error = f"Trop de tentatives : réessayez dans {minutes} minute(s)."
        response = _login_page(request, 429, error, username, next_page)
        response.headers["Retry-After"] = str(attempt.retry_after)
        return response
    password = form.get("mot_de_passe", "")
    engine = engine_of(request)
    user = await attempt.check(authenticate_user(engine, username, password))
    if user is None:
        return _login_page(
            request, 401, "Identifiant ou mot de passe incorrect.", username, next_page
        )
    key = None
    if user.role in SIGNING_ROLES:
        key = await unlock_signing_key(engine, username, password)
    token, _session = await open_session(engine, user, key)
    response = RedirectResponse(next_page, status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/deconnexion")
async def logout(request: Request) -> Response:
    session = await session_of(request)
    if session is None:
        return RedirectResponse("/connexion", status_code=303)
    form = await form_of(request)
    if not secrets.compare_digest(session.csrf_token, form.get("csrf", "")):
        return await error_page(request, 403, CSRF_REFUSED, title="Requête refusée")
    await close_session(engine_of(request), request.cookies[COOKIE_NAME])
    response = RedirectResponse("/connexion", status_code=303)
    response.delete_cookie(COOKIE_NAME)
    return response


@router.get("/espace", response_class=HTMLResponse)
async def workspace(request: Request, session: SignedIn) -> Response:
    return TEMPLATES.TemplateResponse(
        request, "espace.html", {"title": "Mon espace", "session": session}
    )
