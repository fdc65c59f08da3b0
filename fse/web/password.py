"""The "Changer mon mot de passe" page, for any signed-in person (the header links to it).

The new password follows account creation's rule; a wrong current password is a failed login
for the lockout (``fse/security/lockout.py``, the same counters as ``/connexion``), so the form
is no way around it. See ``fse/security/password_change.py`` for what a change does.
"""

from __future__ import annotations

import logging
import math

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fse.security.lockout import start_attempt
from fse.security.password_change import (
    ChangedMeanwhile,
    KeyNotOpened,
    change_password,
    new_password_problem,
)
from fse.security.sessions import COOKIE_NAME, Session
from fse.security.users import MIN_PASSWORD_LENGTH
from fse.web.deps import Posted, SignedIn
from fse.web.login import failure_limits
from fse.web.state import engine_of, runtime_of, settings_of
from fse.web.templates import TEMPLATES

router = APIRouter(include_in_schema=False)
log = logging.getLogger("fse.security")
PAGE = "/espace/mot-de-passe"
REQUIRED = {
    "actuel": "Saisissez votre mot de passe actuel.",
    "nouveau": "Saisissez le nouveau mot de passe.",
    "confirmation": "Saisissez à nouveau le nouveau mot de passe.",
}


def _page(
    request: Request,
    session: Session,
    status: int = 200,
    errors: dict[str, str] | None = None,
    alert: str = "",
    done: bool = False,
) -> HTMLResponse:
    context = {
        "title": "Changer mon mot de passe",
        "session": session,
        "errors": errors or {},
        "alert": alert,
        "done": done,
        "min_length": MIN_PASSWORD_LENGTH,
    }
    return TEMPLATES.TemplateResponse(request, "mot_de_passe.html", context, status_code=status)


@router.get(PAGE, response_class=HTMLResponse)
async def password_form(request: Request, session: SignedIn) -> Response:
    return _page(request, session, done=request.query_params.get("modifie") == "1")


@router.post(PAGE, response_class=HTMLResponse)
async def change(request: Request, session: SignedIn, form: Posted) -> Response:
    password, new = form.get("actuel", ""), form.get("nouveau", "")
    errors = {name: text for name, text in REQUIRED.items() if not form.get(name)}
    errors = errors or new_password_problem(password, new, form.get("confirmation", ""))
    if errors:
        return _page(request, session, 400, errors)
    settings = settings_of(request)
    attempt = await start_attempt(
        runtime_of(request).limiter,
        settings.login_failure_window_seconds,
        failure_limits(request, session.user.username),
    )
    if not attempt.allowed:  # the password is not even looked at
        minutes = math.ceil(attempt.retry_after / 60)
        alert = f"Trop de tentatives : réessayez dans {minutes} minute(s). Rien n'a été changé."
        response = _page(request, session, 429, alert=alert)
        response.headers["Retry-After"] = str(attempt.retry_after)
        return response
    engine, cookie = engine_of(request), request.cookies.get(COOKIE_NAME, "")
    try:
        changed = await attempt.check(
            change_password(engine, session.user.pk, password, new, cookie)
        )
    except ChangedMeanwhile:
        alert = "Votre compte a été modifié entre-temps : rien n'a été changé, recommencez."
        return _page(request, session, 409, alert=alert)
    except KeyNotOpened:
        log.error("user %s: password and sealed signing key disagree", session.user.username)
        alert = (
            "Votre clé de signature ne s'ouvre pas avec ce mot de passe : rien n'a été changé. "
            "Contactez l'administrateur de la plateforme."
        )
        return _page(request, session, 409, alert=alert)
    if changed is None:
        return _page(request, session, 400, {"actuel": "Mot de passe actuel incorrect."})
    log.info(
        "user %s changed their password; %d other session(s) ended",
        session.user.username,
        changed.sessions_ended,
    )
    return RedirectResponse(f"{PAGE}?modifie=1", status_code=303)
