"""Per-client throttling of the FHIR API, as a plain ASGI middleware (no body buffering)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from fse.errors import ErrorCode, TooManyRequests
from fse.fhir_api.http import fhir_response
from fse.runtime.ratelimit import RateLimiter

WINDOW_SECONDS = 60


class ThrottleMiddleware:
    def __init__(
        self, app: ASGIApp, limiter: RateLimiter, per_minute: int, prefix: str = "/fhir"
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.per_minute = per_minute
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or self.per_minute <= 0
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("unknown", 0)
        decision = await self.limiter.hit(f"client:{client[0]}", self.per_minute, WINDOW_SECONDS)
        if decision.allowed:
            await self.app(scope, receive, send)
            return
        error = TooManyRequests(
            f"more than {self.per_minute} requests per minute from this client",
            code=ErrorCode.RATE_LIMITED,
            headers={"Retry-After": str(decision.retry_after)},
        )
        response = fhir_response(error.outcome(), error.status, error.headers)
        await response(scope, receive, send)
