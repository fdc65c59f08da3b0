"""FHIR JSON answers: the one way every floor (security middleware, health, routes) writes one.

At the bottom so that what sits below the FHIR API (authentication, throttling, health) can
answer in FHIR without importing the API.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Response

from fse import fhir_json

FHIR_JSON = "application/fhir+json"

_PHRASES_KEPT = {
    413: "Request Entity Too Large",
    416: "Requested Range Not Satisfiable",
    422: "Unprocessable Entity",
}
"""The phrases the platform has always written (RFC 7231's), which Python 3.13 renamed after
RFC 9110 ("Unprocessable Content"): an answer must not change with the interpreter."""


def reason_phrase(status: int) -> str:
    """The reason phrase written beside ``status`` (batch entries, the OpenAPI document)."""
    return _PHRASES_KEPT.get(status) or HTTPStatus(status).phrase


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
