"""``$validate`` (FHIR R4 Resource-validate): 200 with an OperationOutcome, valid or not."""

from __future__ import annotations

from fastapi import Response

from fse.errors import BadRequest, ErrorCode
from fse.fhir_api.http import read_body
from fse.fhir_api.operations import Operation, OperationCall
from fse.resources import check_type, parse_json, validation_issues
from fse.responses import fhir_response
from fse.store.search_params import SUPPORTED_TYPES


def _resource_from(body: dict[str, object]) -> dict[str, object]:
    if body.get("resourceType") != "Parameters":
        return body
    for parameter in body.get("parameter", []) or []:
        if isinstance(parameter, dict) and parameter.get("name") == "resource":
            resource = parameter.get("resource")
            if isinstance(resource, dict):
                return resource
    raise BadRequest(
        "Parameters must carry a 'resource' parameter",
        ("Parameters.parameter",),
        code=ErrorCode.INVALID_REQUEST,
    )


async def validate_operation(call: OperationCall) -> Response:
    body = await read_body(call.request, call.service.settings.max_body_bytes)
    resource = _resource_from(parse_json(body))
    check_type(resource, call.resource_type)
    issues = validation_issues(resource)
    if not issues:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": f"{call.resource_type} is valid",
                }
            ],
        }
        return fhir_response(outcome)
    return fhir_response(
        {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}
    )


VALIDATE = Operation(
    name="validate",
    resource_types=SUPPORTED_TYPES,
    handler=validate_operation,
    definition="http://hl7.org/fhir/OperationDefinition/Resource-validate",
    checks_owner=True,  # it reads nothing stored: the body is checked and answered
)
