"""HTTP details of the FHIR API: media types, body limits, headers, responses."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import Request, Response
from starlette.requests import ClientDisconnect

from fse import fhir_json
from fse.errors import (
    BadRequest,
    ErrorCode,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from fse.store.query import whole_number
from fse.store.repository import Stored

FHIR_JSON = "application/fhir+json"
JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})


def fhir_response(
    body: str | bytes | dict[str, Any] | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    if isinstance(body, dict):
        body = fhir_json.dumps(body)  # a Decimal leaves as written: 150.00
    return Response(
        content=b"" if body is None else body,
        status_code=status,
        headers=headers,
        media_type=FHIR_JSON if body is not None else None,
    )


FORM_TYPES = frozenset({"application/x-www-form-urlencoded"})
R4_VERSION = re.compile(r"4\.0(\.[0-9]+)?")
"""The ``fhirVersion`` media type parameter values of FHIR R4 (R4 \u00a72.1.0.8: "4.0")."""


def media_type(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lower case) and its parameters (names lower case, values unquoted)."""
    head, *rest = value.split(";")
    params = {}
    for part in rest:
        name, _, raw = part.partition("=")
        params[name.strip().lower()] = raw.strip().strip('"')
    return head.strip().lower(), params


def is_r4(params: dict[str, str]) -> bool:
    """No ``fhirVersion`` parameter, or one naming FHIR R4: the only version served."""
    version = params.get("fhirversion")
    return version is None or R4_VERSION.fullmatch(version) is not None


async def read_body(
    request: Request, limit: int, media_types: frozenset[str] = JSON_TYPES
) -> bytes:
    """The request body, refusing wrong media types or FHIR versions (415), oversize bodies
    (413) early, and a body that stops arriving (408: a Content-Length larger than what is
    sent would otherwise hold the request until the client gives up)."""
    media, params = media_type(request.headers.get("content-type", ""))
    if media not in media_types:
        wanted = FHIR_JSON if media_types is JSON_TYPES else ", ".join(sorted(media_types))
        raise UnsupportedMediaType(
            f"Content-Type {media or '(none)'} is not supported; send {wanted}",
            code=ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        )
    if not is_r4(params):
        raise UnsupportedMediaType(
            f"Content-Type fhirVersion={params['fhirversion']}: only FHIR R4 (4.0) is served",
            code=ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        )
    declared = whole_number(request.headers.get("content-length", ""))
    if declared is not None and declared > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(request.app.state.settings.body_timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(
            f"the body stopped arriving after {size} bytes"
            + (f" of the {declared} announced by Content-Length" if declared else ""),
            code=ErrorCode.REQUEST_TIMEOUT,
        ) from None
    except ClientDisconnect:
        raise BadRequest(
            "the client went away before sending the whole body", code=ErrorCode.INVALID_REQUEST
        ) from None
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"body over {limit} bytes", code=ErrorCode.PAYLOAD_TOO_LARGE)


def form_items(raw: bytes) -> list[tuple[str, str]]:
    """``name=value&...`` pairs (a query string or a form body), percent-decoded as UTF-8.

    Bytes that are not UTF-8 (raw or percent-encoded) are a 400 naming the parameter: replacing
    them would search for something the client never sent."""
    items = []
    for pair in raw.split(b"&"):
        if pair:
            name_raw, _, value_raw = pair.partition(b"=")
            name = _utf8(name_raw, None)
            items.append((name, _utf8(value_raw, name)))
    return items


def _utf8(raw: bytes, name: str | None) -> str:
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        what = f"the value of {name}" if name is not None else "a parameter name"
        raise BadRequest(
            f"{what} is not UTF-8 text once percent-decoded",
            (name,) if name is not None else (),
            code=ErrorCode.INVALID_SEARCH_PARAMETER,
        ) from None


def parse_etag(value: str | None, header: str = "If-Match") -> int | None:
    if value is None:
        return None
    version = whole_number(value.strip().removeprefix("W/").strip('"'))
    if version is None:
        raise BadRequest(
            f'{header}: expected W/"<versionId>", got {value!r}', code=ErrorCode.INVALID_REQUEST
        )
    return version


def prefer(request: Request, key: str) -> str | None:
    """One preference of the Prefer header (RFC 7240: comma- or semicolon-separated)."""
    for part in request.headers.get("prefer", "").replace(",", ";").split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == key:
            return value.strip().strip('"').lower()
    return None


def base_url(request: Request, configured: str) -> str:
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/") + "/fhir"


def version_headers(stored: Stored, base: str) -> dict[str, str]:
    return {
        "ETag": stored.etag,
        "Last-Modified": stored.last_updated.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "Location": f"{base}/{stored.location}",
    }


def write_response(request: Request, stored: Stored, status: int, base: str) -> Response:
    """Honour ``Prefer: return=minimal|representation|OperationOutcome``."""
    headers = version_headers(stored, base)
    wanted = prefer(request, "return")
    if wanted == "minimal":
        return fhir_response(None, status, headers)
    if wanted == "operationoutcome":
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": f"{stored.location} stored",
                }
            ],
        }
        return fhir_response(outcome, status, headers)
    return fhir_response(stored.content, status, headers)
