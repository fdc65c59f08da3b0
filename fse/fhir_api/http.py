"""HTTP details of the FHIR API: media types, body limits, headers, responses."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request, Response

from fse.errors import BadRequest, ErrorCode, PayloadTooLarge, UnsupportedMediaType
from fse.store.repository import Stored

FHIR_JSON = "application/fhir+json"
JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})


def fhir_response(
    body: str | bytes | dict[str, Any] | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    if isinstance(body, dict):
        body = orjson.dumps(body)
    return Response(
        content=b"" if body is None else body,
        status_code=status,
        headers=headers,
        media_type=FHIR_JSON if body is not None else None,
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing wrong media types (415) and oversize bodies (413) early."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {media or '(none)'} is not supported; send {FHIR_JSON}",
            code=ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"body over {limit} bytes", code=ErrorCode.PAYLOAD_TOO_LARGE)


def parse_etag(value: str | None, header: str = "If-Match") -> int | None:
    if value is None:
        return None
    raw = value.strip().removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise BadRequest(
            f'{header}: expected W/"<versionId>", got {value!r}', code=ErrorCode.INVALID_REQUEST
        )
    return int(raw)


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
