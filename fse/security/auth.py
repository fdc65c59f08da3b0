"""Authentication and authorisation of the FHIR API.

Every ``/fhir`` request but the CapabilityStatement needs a bearer token (CNSS systems, OAuth2
client credentials) or a signed-in user's session (writes also carry the session's CSRF token in
``X-CSRF-Token``). What each may then do is the access model's (``fse.security.access``), applied
per request by ``fse.fhir_api.guard``. Verified tokens are cached per worker; a client's
revocation is seen within ``CLIENT_STATE_TTL`` seconds (Redis shares it).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from fse.crypto.tokens import InvalidToken, KeyLookup, header_kid, verify
from fse.errors import ErrorCode, FhirError, Forbidden, Unauthenticated
from fse.responses import fhir_response
from fse.runtime.cache import Cache
from fse.security.access import role_grants
from fse.security.clients import find_client
from fse.security.scopes import Grant, allows, parse
from fse.security.sessions import COOKIE_NAME, session_for
from fse.security.users import User

PUBLIC_PATHS = frozenset({"/fhir/metadata"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CLIENT_STATE_TTL = 10
"""Seconds a client's active/revoked state is shared in the runtime cache (Redis)."""
LOCAL_STATE_TTL = 2
"""Seconds each worker remembers it without asking the cache (a round trip per request)."""
REVOCATION_DELAY = CLIENT_STATE_TTL + LOCAL_STATE_TTL
TOKEN_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Principal:
    client_id: str
    """A system client's id, or ``user:<username>`` for a signed-in person."""
    grants: tuple[Grant, ...]
    """A system client's scopes; a person's role letters (``fse.security.access``)."""
    person: User | None = None
    """Set for a signed-in person: their role's cells and rules, not scopes, decide."""


def unauthenticated(reason: str) -> Unauthenticated:
    return Unauthenticated(
        f"authentication required: {reason}; get a token at /auth/token",
        code=ErrorCode.UNAUTHENTICATED,
        headers={"WWW-Authenticate": f'Bearer realm="fse", error="invalid_token", {_said(reason)}'},
    )


def _said(reason: str) -> str:
    return f'error_description="{reason}"'


class Authenticator:
    def __init__(self, keys: KeyLookup, audience: str, engine: AsyncEngine, cache: Cache) -> None:
        """``keys``: the token key ring's lookup by kid (``fse.crypto.key_ring``)."""
        self.keys, self.audience, self.engine, self.cache = keys, audience, engine, cache
        self._verified: OrderedDict[str, tuple[float, Principal, str]] = OrderedDict()
        self._known_active: dict[str, tuple[float, bool]] = {}

    async def principal_of_session(
        self, cookie: str | None, method: str, csrf_header: str | None
    ) -> Principal:
        """A signed-in user: their role's grants; unsafe methods need the session's CSRF token."""
        session = await session_for(self.engine, cookie)
        if session is None:
            raise unauthenticated("session expired")
        if method not in SAFE_METHODS and not (
            csrf_header and secrets.compare_digest(csrf_header, session.csrf_token)
        ):
            raise Forbidden(
                "X-CSRF-Token header missing or wrong for a write with a session",
                code=ErrorCode.FORBIDDEN,
            )
        user = session.user
        return Principal(f"user:{user.username}", role_grants(user.role), user)

    async def principal(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated("no bearer token")
        principal = self._cached(token) or self._verify(token)
        if not await self._active(principal.client_id):
            raise unauthenticated("client revoked")
        return principal

    def _cached(self, token: str) -> Principal | None:
        """A token verified before, while it is unexpired and its key still accepted (a key
        revoked by ``fse keys rotate --revoke`` takes its remembered tokens with it)."""
        entry = self._verified.get(token)
        if entry is None or entry[0] <= time.time():
            return None
        if self.keys(entry[2]) is None:
            del self._verified[token]
            return None
        return entry[1]

    def _verify(self, token: str) -> Principal:
        try:
            claims = verify(self.keys, token, self.audience, self.audience)
        except InvalidToken as exc:
            raise unauthenticated(str(exc)) from None
        principal = Principal(claims["sub"], parse(claims.get("scope", "")))
        self._verified[token] = (claims["exp"], principal, header_kid(token))
        if len(self._verified) > TOKEN_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    async def _active(self, client_id: str) -> bool:
        memo = self._known_active.get(client_id)
        if memo is not None and memo[0] > time.monotonic():
            return memo[1]
        active = await self._shared_active(client_id)
        if len(self._known_active) > TOKEN_CACHE_SIZE:
            self._known_active.clear()
        self._known_active[client_id] = (time.monotonic() + LOCAL_STATE_TTL, active)
        return active

    async def _shared_active(self, client_id: str) -> bool:
        key = f"client-active:{client_id}"
        state = await self.cache.get(key)
        if state is None:
            found = await find_client(self.engine, client_id)
            state = b"1" if found and not found[0].revoked else b"0"
            await self.cache.set(key, state, CLIENT_STATE_TTL)
        return state == b"1"

    async def forget(self, client_id: str) -> None:
        """Drop the cached state (after a revocation in this process)."""
        self._known_active.pop(client_id, None)
        await self.cache.delete(f"client-active:{client_id}")


class AuthMiddleware:
    """Puts the caller's Principal in ``scope['state']``, or answers 401 before reading a body."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/fhir") or path in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        cookie = _cookie(headers.get(b"cookie", b"").decode("latin-1"), COOKIE_NAME)
        try:
            if b"authorization" not in headers and cookie:
                principal = await self.authenticator.principal_of_session(
                    cookie, scope["method"], headers.get(b"x-csrf-token", b"").decode("latin-1")
                )
            else:
                principal = await self.authenticator.principal(
                    headers.get(b"authorization", b"").decode("latin-1")
                )
        except FhirError as error:
            await fhir_response(error.outcome(), error.status, error.headers)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def principal_of(request: Request) -> Principal:
    """The authenticated caller; fails closed if the middleware did not run for this route."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise unauthenticated("no bearer token")
    return principal


VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def authorize(principal: Principal | None, resource_type: str, permission: str) -> None:
    """403 unless the caller may use ``permission`` (c, r, u, d, s) on the type: a system
    client's scopes, a person's role (``fse.security.access``; the guard then narrows it).

    ``None`` is the platform itself (seeding the guide and demo data), never an HTTP caller.
    """
    if principal is None or allows(principal.grants, resource_type, permission):
        return
    needed = f"system/{resource_type}.{permission}"
    if principal.person is not None:
        message = (
            f"{principal.person.role_label} ({principal.client_id}) may not "
            f"{VERBS[permission]} {resource_type} through the API (docs/security.md)"
        )
    else:
        message = f"client {principal.client_id} lacks scope {needed}"
    raise Forbidden(message, (needed,), code=ErrorCode.FORBIDDEN)
