"""The OpenAPI document says what ``/fhir`` really answers.

FastAPI describes each route as answering ``application/json`` 200 and, for routes with path
parameters, a 422 ``HTTPValidationError`` that the API never sends. Here every ``/fhir``
operation gets its success statuses with their media type (``application/fhir+json`` but for the
bulk-export manifest and files), the error statuses it can answer, each an ``OperationOutcome``
in ``application/fhir+json``, and a ``default`` OperationOutcome for anything else (500, a 503
from the database).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from fse.responses import FHIR_JSON, reason_phrase

OUTCOME_REF = {"$ref": "#/components/schemas/OperationOutcome"}
RESOURCE_REF = {"$ref": "#/components/schemas/Resource"}
SCHEMAS: dict[str, Any] = {
    "OperationOutcome": {
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
            "issue": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["severity", "code"],
                    "properties": {
                        "severity": {
                            "type": "string",
                            "enum": ["fatal", "error", "warning", "information"],
                        },
                        "code": {"type": "string"},
                        "details": {"type": "object"},
                        "diagnostics": {"type": "string"},
                        "expression": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    },
    "Resource": {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string"}},
    },
}
EVERY = (400, 401, 403, 406, 414, 429)
"""What any /fhir request can be answered: bad parameters or headers, no or a wrong token, an
Accept without JSON, an overlong URL, too many requests."""
BODY = (405, 408, 409, 412, 413, 415, 422)
"""What a request with a FHIR body can also be answered (405: a write no one makes)."""
TYPED = (404,)
"""Unknown resource type, id or operation."""
SUCCESS: dict[tuple[str, str], dict[int, str | None]] = {
    ("post", "/fhir/Subscription"): {201: FHIR_JSON},
    ("delete", "/fhir/Subscription/{rid}"): {204: None},
    ("get", "/fhir/$export"): {202: None},
    ("get", "/fhir/Patient/$export"): {202: None},
    ("get", "/fhir/Patient/{rid}/$export"): {202: None},
    ("get", "/fhir/$export-status/{job_id}"): {200: "application/json", 202: None},
    ("delete", "/fhir/$export-status/{job_id}"): {202: None},
    ("get", "/fhir/$export-file/{job_id}/{name}"): {200: "application/fhir+ndjson"},
    ("post", "/fhir/{rtype}"): {201: FHIR_JSON, 200: FHIR_JSON},
    ("delete", "/fhir/{rtype}/{rid}"): {204: None},
    ("post", "/fhir/{rtype}/{name}"): {200: FHIR_JSON, 201: FHIR_JSON},
}
"""Success answers other than 200 application/fhir+json, and their media type (None: no body)."""
FORM_BODY = {
    "required": False,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {"type": "object", "additionalProperties": {"type": "string"}}
        }
    },
}


def errors_of(method: str, path: str, has_body: bool) -> tuple[int, ...]:
    statuses = set(EVERY)
    if path != "/fhir/metadata":
        statuses |= set(TYPED)
    if has_body or method in ("put", "delete") or path.endswith("/_search"):
        statuses |= set(BODY)
    if path.endswith("_search"):
        statuses -= {405, 409, 412, 422}
    if method in ("post", "put", "delete") and "{rtype}" in path:
        statuses.add(405)
    return tuple(sorted(statuses))


def _content(media: str | None, schema: dict[str, Any]) -> dict[str, Any]:
    return {} if media is None else {"content": {media: {"schema": schema}}}


def describe(method: str, path: str, operation: dict[str, Any]) -> None:
    """Replace the operation's responses with what the API answers."""
    success = SUCCESS.get((method, path), {200: FHIR_JSON})
    responses: dict[str, Any] = {}
    for status, media in success.items():
        schema = RESOURCE_REF if media == FHIR_JSON else {"type": "object"}
        if media == "application/fhir+ndjson":
            schema = {"type": "string"}
        responses[str(status)] = {
            "description": reason_phrase(status),
            **_content(media, schema),
        }
    for status in errors_of(method, path, "requestBody" in operation):
        responses[str(status)] = {
            "description": f"{reason_phrase(status)}: an OperationOutcome",
            **_content(FHIR_JSON, OUTCOME_REF),
        }
    responses["default"] = {
        "description": "Any other error: an OperationOutcome",
        **_content(FHIR_JSON, OUTCOME_REF),
    }
    operation["responses"] = responses
    if path.endswith("/_search"):
        operation["requestBody"] = FORM_BODY


def fhir_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the /fhir answers declared (built once, then kept)."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for path, item in document["paths"].items():
            if path == "/fhir" or path.startswith("/fhir/"):
                for method, operation in item.items():
                    describe(method, path, operation)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        if "HTTPValidationError" not in str(document["paths"]):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        schemas.update(SCHEMAS)
        app.openapi_schema = document
    return app.openapi_schema
