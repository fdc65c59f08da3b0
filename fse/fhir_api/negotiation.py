"""What a FHIR request must be before a route sees it, checked once for every ``/fhir`` URL.

- a URL of ``MAX_URL_BYTES`` at most (414): longer searches go in a POST ``_search`` form;
- query parameters that are UTF-8 once percent-decoded (400 naming the parameter), where
  Starlette would quietly replace the bytes and search for something never sent;
- an answer the client takes: only FHIR R4 JSON is served, so an ``Accept`` that admits no JSON
  (or only another ``fhirVersion``) and a ``_format`` other than JSON are a 406.

The HTML pages negotiate nothing: browsers' ``Accept`` never reaches these rules.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from fse.errors import ErrorCode, FhirError, NotAcceptable, UriTooLong
from fse.fhir_api.http import JSON_TYPES, form_items, is_r4, media_type
from fse.responses import FHIR_JSON, fhir_response

MAX_URL_BYTES = 8192
"""Longest path and query string served (bytes, percent-encoded). Up to 64 KB the app answers
414; beyond, the HTTP parser refuses the request itself (``fse.serve``)."""
JSON_FORMATS = frozenset({"json", *JSON_TYPES})
"""``_format`` values answered (R4 \u00a73.1.0.1.9: 'json' or a JSON media type)."""
ANSWERED = (FHIR_JSON, "application/json")
"""The media types the answers can be labelled with: an Accept must admit one of them."""
EXPORT_FILES = "/fhir/$export-file/"
NDJSON_ANSWERED = ("application/fhir+ndjson", "application/ndjson", *ANSWERED)
"""A bulk export file is NDJSON (its errors JSON): Bulk Data clients ask for that."""


def is_fhir(path: str) -> bool:
    return path == "/fhir" or path.startswith("/fhir/")


def check_request(scope: Scope) -> None:
    """Raise the FhirError that refuses the request, if any."""
    path_bytes = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    if len(path_bytes) + len(query) + (1 if query else 0) > MAX_URL_BYTES:
        raise UriTooLong(
            f"the URL is {len(path_bytes) + len(query) + 1} bytes, over {MAX_URL_BYTES}: "
            "send the search parameters as a form to POST [type]/_search",
            code=ErrorCode.URI_TOO_LONG,
        )
    for name, value in form_items(query):
        if name == "_format":
            check_format(value)
    answered = NDJSON_ANSWERED if scope["path"].startswith(EXPORT_FILES) else ANSWERED
    for name, value in scope["headers"]:
        if name == b"accept":
            check_accept(value.decode("latin-1"), answered)


def check_format(value: str) -> None:
    media, params = media_type(value.replace(" ", "+"))  # an unencoded '+' reads as a space
    if media not in JSON_FORMATS or not is_r4(params):
        raise NotAcceptable(
            f"_format={value}: only FHIR R4 JSON is served (json, {FHIR_JSON})",
            ("_format",),
            code=ErrorCode.NOT_ACCEPTABLE,
        )


def check_accept(header: str, answered: tuple[str, ...] = ANSWERED) -> None:
    if not header.strip():
        return
    ranges = [media_type(part) for part in header.split(",") if part.strip()]
    if not any(_quality(ranges, answer) > 0 for answer in answered):
        raise NotAcceptable(
            f"Accept: {header}: only {FHIR_JSON} (FHIR R4) is served",
            code=ErrorCode.NOT_ACCEPTABLE,
        )


def _quality(ranges: list[tuple[str, dict[str, str]]], answer: str) -> float:
    """The quality the most specific range matching ``answer`` gives it (RFC 9110 \u00a712.5.1);
    a range naming another ``fhirVersion`` does not take FHIR R4."""
    kind = answer.split("/")[0]
    best: tuple[int, float] = (-1, 0.0)
    for media, params in ranges:
        specificity = {answer: 2, f"{kind}/*": 1, "*/*": 0}.get(media)
        if specificity is None or specificity <= best[0]:
            continue
        best = (specificity, _q(params) if is_r4(params) else 0.0)
    return best[1]


def _q(params: dict[str, str]) -> float:
    try:
        return float(params.get("q", "1"))
    except ValueError:
        return 1.0


class FhirRequestMiddleware:
    """Applies :func:`check_request` to ``/fhir`` requests (a plain ASGI middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_fhir(scope["path"]):
            try:
                check_request(scope)
            except FhirError as error:
                response = fhir_response(error.outcome(), error.status)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
