"""OAuth2 token endpoint (client credentials, RFC 6749 §4.4) and SMART discovery documents.

Failed client authentications lock out per client id and per address
(``fse/security/lockout.py``); successful ones never count.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from fse.addresses import client_address
from fse.crypto.tokens import issue
from fse.security.clients import authenticate
from fse.security.lockout import start_attempt, subject_key
from fse.security.scopes import InvalidScope, parse, within

router = APIRouter(tags=["Authentification"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = dict(NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="fse"'
    return JSONResponse({"error": error, "error_description": description}, status, headers)


def _credentials(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    """client_secret_basic (Authorization: Basic) or client_secret_post (form fields)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return unquote(client_id), unquote(secret)
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    return None


@router.post("/auth/token", summary="OAuth2 token (client credentials)")
async def token(request: Request) -> JSONResponse:
    try:
        form = dict(parse_qsl((await request.body()).decode(), errors="strict"))
    except UnicodeDecodeError:  # no secret is checked on bytes replaced by U+FFFD
        return oauth_error(400, "invalid_request", "the form is not UTF-8 text")
    if form.get("grant_type") != "client_credentials":
        return oauth_error(400, "unsupported_grant_type", "only grant_type=client_credentials")
    credentials = _credentials(request, form)
    if credentials is None:
        return oauth_error(401, "invalid_client", "client authentication required")
    settings = request.app.state.settings
    address = client_address(request.scope, settings)
    attempt = await start_attempt(
        request.app.state.runtime.limiter,
        settings.token_failure_window_seconds,
        [
            (subject_key("token-client", credentials[0]), settings.token_failures_per_client),
            (f"token-address:{address}", settings.token_failures_per_address),
        ],
    )
    if not attempt.allowed:  # the secret is not even looked at
        response = oauth_error(
            429,
            "temporarily_unavailable",
            f"too many failed client authentications: retry in {attempt.retry_after} s",
        )
        response.headers["Retry-After"] = str(attempt.retry_after)
        return response
    client = await attempt.check(authenticate(request.app.state.engine, *credentials))
    if client is None:
        return oauth_error(401, "invalid_client", "unknown client, wrong secret or revoked")
    scope = " ".join(form.get("scope", client.scopes).split())
    try:
        if not within(parse(scope), client.grants):
            return oauth_error(400, "invalid_scope", "scope beyond what this client was granted")
    except InvalidScope as exc:
        return oauth_error(400, "invalid_scope", str(exc))
    access_token = issue(
        request.app.state.token_keys.signer(),
        {
            "iss": settings.token_audience,
            "aud": settings.token_audience,
            "sub": client.client_id,
            "client_id": client.client_id,  # RFC 9068 2.2: the client the token was issued to
            "scope": scope,
        },
        settings.token_ttl_seconds,
    )
    body = {
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": settings.token_ttl_seconds,
        "scope": scope,
    }
    return JSONResponse(body, headers=NO_STORE)


@router.get("/.well-known/smart-configuration", summary="SMART configuration")
async def smart_configuration(request: Request) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "issuer": request.app.state.settings.token_audience,
            "token_endpoint": f"{base}/auth/token",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": [
                "system/*.cruds",
                "system/*.rs",
                "system/*.read",
                "system/*.write",
            ],
            "capabilities": ["client-confidential-symmetric", "permission-v2", "permission-v1"],
        }
    )


@router.get("/.well-known/jwks.json", summary="Public keys of the token signer")
async def jwks(request: Request) -> JSONResponse:
    """The keys that verify tokens now (after a rotation, the new one and the retiring ones),
    and the platform key that signs dispense receipts; cache it for at most five minutes."""
    return JSONResponse(
        request.app.state.token_keys.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )
