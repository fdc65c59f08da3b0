"""Security headers on every response, as a plain ASGI middleware (no body buffering).

The policy allows only our own scripts, styles and images (no inline code: the templates keep
theirs in ``fse/web/static``), no framing, no MIME sniffing, and no referrer sent to other
sites. Every response is ``no-store`` (pages and the FHIR API carry personal data) except the
public documents and assets listed in ``cacheable``; a route's own ``Cache-Control`` is kept
when it already forbids storing. HSTS goes only on responses to https requests (directly, or
through a trusted proxy: ``fse/addresses.py``), where a browser honours it.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fse.addresses import client_scheme
from fse.config import Settings

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"
EVERY_RESPONSE = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
RAW_EVERY_RESPONSE = tuple(
    (name.lower().encode(), value.encode()) for name, value in EVERY_RESPONSE.items()
)
"""As ASGI sends them (lower-case bytes): one list append per response, no header parsing."""
PUBLIC_PATHS = frozenset({"/fhir/metadata", "/openapi.json", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/", "/.well-known/")


def cacheable(path: str) -> bool:
    """Public documents and assets, the same for everyone: the only responses a browser or a
    proxy may keep. Anything else may name an insured."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = not cacheable(scope["path"])
        https = client_scheme(scope, self.settings) == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = message.setdefault("headers", [])
                present = {name.lower(): value for name, value in raw}
                raw.extend(h for h in RAW_EVERY_RESPONSE if h[0] not in present)
                cache = present.get(b"cache-control", b"").lower()
                if private and b"no-store" not in cache:
                    if cache:  # a route's own caching is replaced, not doubled
                        MutableHeaders(scope=message)["Cache-Control"] = "no-store"
                    else:
                        raw.append((b"cache-control", b"no-store"))
                if https and b"strict-transport-security" not in present:
                    raw.append((b"strict-transport-security", STRICT_TRANSPORT_SECURITY.encode()))
            await send(message)

        await self.app(scope, receive, send_with_headers)
