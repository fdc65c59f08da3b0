"""Throttling of the FHIR API, as plain ASGI middlewares (no body buffering).

Two counters, both in the runtime's rate limiter (Redis when configured, so every worker of
every server shares them): per client address (``fse/addresses.py``: the peer, or what
a trusted proxy saw), before authentication; then per caller, after
it: a system client (its client id) or a signed-in person (their user name), each with its own
limit. While Redis does not answer, the limiter counts in each worker's memory instead
(``fse/runtime/degraded.py``): limits keep applying, per worker, and no request fails for it.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from fse.addresses import client_address
from fse.config import Settings
from fse.errors import ErrorCode, TooManyRequests
from fse.responses import fhir_response
from fse.runtime.ratelimit import RateLimiter

WINDOW_SECONDS = 60

Rule = Callable[[Scope], tuple[str, int, str] | None]
"""A request's counter key, its limit per minute and whom the limit is for (None: no limit)."""


def by_address(settings: Settings) -> Rule:
    def rule(scope: Scope) -> tuple[str, int, str] | None:
        address = client_address(scope, settings)
        return f"client:{address}", settings.rate_limit_per_minute, "from this address"

    return rule


def by_caller(settings: Settings) -> Rule:
    """After authentication: the caller's own budget (read at each request, so a setting
    changed at run time applies at once)."""

    def rule(scope: Scope) -> tuple[str, int, str] | None:
        principal = scope.get("state", {}).get("principal")
        if principal is None:
            return None
        if principal.client_id.startswith("user:"):
            return f"caller:{principal.client_id}", settings.rate_limit_per_user, "for this user"
        key = f"caller:{principal.client_id}"
        return key, settings.rate_limit_per_system_client, "for this client"

    return rule


class ThrottleMiddleware:
    def __init__(
        self, app: ASGIApp, limiter: RateLimiter, rule: Rule, prefix: str = "/fhir"
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.rule = rule
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        counted = (
            self.rule(scope)
            if scope["type"] == "http" and scope["path"].startswith(self.prefix)
            else None
        )
        if counted is None or counted[1] <= 0:
            await self.app(scope, receive, send)
            return
        key, per_minute, whom = counted
        decision = await self.limiter.hit(key, per_minute, WINDOW_SECONDS)
        if decision.allowed:
            await self.app(scope, receive, send)
            return
        error = TooManyRequests(
            f"more than {per_minute} requests per minute {whom}",
            code=ErrorCode.RATE_LIMITED,
            headers={"Retry-After": str(decision.retry_after)},
        )
        response = fhir_response(error.outcome(), error.status, error.headers)
        await response(scope, receive, send)
