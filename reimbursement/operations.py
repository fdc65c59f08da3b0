"""The reimbursement FHIR operations, contributed to the app's operation registry."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from fhir_profiles.systems import CARE_SHEET_SYSTEM, CLAIM_RESPONSE_REVIEW_OPERATION
from fse.api_audit import name_for_audit
from fse.fhir_api.guard import guard_of
from fse.fhir_api.http import read_body
from fse.fhir_api.operations import Operation, OperationCall
from fse.resources import check_type, parse_json
from fse.responses import fhir_response
from reimbursement.eligibility import check_eligibility
from reimbursement.review import review_claim
from reimbursement.settle import Settlement
from reimbursement.signed_claims import checked_signature
from reimbursement.state import settlement_of
from reimbursement.tariff_publication import PUBLISH_TARIFFS


def _settlement(call: OperationCall) -> Settlement:
    return settlement_of(call.request)


def _resource(body: dict[str, object], rtype: str) -> dict[str, object]:
    """The resource itself, or the one a Parameters/Bundle wraps (FHIR $submit accepts both)."""
    if body.get("resourceType") == "Parameters":
        for parameter in body.get("parameter", []) or []:  # type: ignore[union-attr]
            resource = parameter.get("resource") if isinstance(parameter, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == rtype:
                return resource
    if body.get("resourceType") == "Bundle":
        for entry in body.get("entry", []) or []:  # type: ignore[union-attr]
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == rtype:
                return resource
    return body


async def submit_claim(call: OperationCall) -> Response:
    """A system client submits for any professional; a person only their own, signed claim."""
    body = parse_json(await read_body(call.request, call.service.settings.max_body_bytes))
    claim: dict = _resource(body, "Claim")  # type: ignore[assignment]
    guard = guard_of(call.request)
    signed = None
    if guard.person is not None:
        check_type(claim, "Claim")
        signed = await checked_signature(call.service, guard, body, claim)
    settled = await _settlement(call).submit(claim, signed)
    name_for_audit(call.request.state, _concerned(settled.response))
    headers = {"X-FSE-Replayed": "true"} if settled.replayed else None
    return fhir_response(settled.response, 200, headers)


def _concerned(response: dict[str, Any]) -> list[dict[str, Any]]:
    """What a $submit's AuditEvent names: the insured, and the Claim with its care-sheet number
    (the ClaimResponse carries both, as settled or replayed)."""
    entities: list[dict[str, Any]] = []
    patient = (response.get("patient") or {}).get("reference")
    if patient:
        entities.append({"what": {"reference": patient}, "type": {"code": "1"}})
    claim = (response.get("request") or {}).get("reference")
    numbers = [i.get("value") for i in response.get("identifier", []) if i.get("value")]
    if claim:
        what: dict[str, Any] = {"reference": claim}
        if numbers:
            what["identifier"] = {"system": CARE_SHEET_SYSTEM, "value": numbers[0]}
        entities.append({"what": what, "type": {"code": "2"}})
    return entities


async def submit_eligibility(call: OperationCall) -> Response:
    body = parse_json(await read_body(call.request, call.service.settings.max_body_bytes))
    settlement = _settlement(call)
    request = _resource(body, "CoverageEligibilityRequest")
    guard = guard_of(call.request)
    if guard.person is not None:  # only for themselves
        check_type(request, "CoverageEligibilityRequest")
        async with call.service.store.snapshot() as conn:
            await guard.check_new(conn, "CoverageEligibilityRequest", request)  # type: ignore[arg-type]
    answer = await check_eligibility(
        call.service,
        settlement.books,
        settlement.schedule,
        request,  # type: ignore[arg-type]
    )
    return fhir_response(answer)


async def review(call: OperationCall) -> Response:
    body = parse_json(await read_body(call.request, call.service.settings.max_body_bytes))
    assert call.resource_id is not None
    principal = getattr(call.request.state, "principal", None)
    reviewer = getattr(principal, "client_id", "inconnu")
    answer = await review_claim(_settlement(call), call.resource_id, body, reviewer)
    return fhir_response(answer)


SUBMIT_CLAIM = Operation(
    name="submit",
    resource_types=("Claim",),
    handler=submit_claim,
    definition="http://hl7.org/fhir/OperationDefinition/Claim-submit",
    permission="c",
    checks_owner=True,
)
SUBMIT_ELIGIBILITY = Operation(
    name="submit",
    resource_types=("CoverageEligibilityRequest",),
    handler=submit_eligibility,
    definition="http://hl7.org/fhir/OperationDefinition/CoverageEligibilityRequest-submit",
    permission="c",
    checks_owner=True,
)
REVIEW = Operation(
    name="review",
    resource_types=("ClaimResponse",),
    handler=review,
    type_level=False,
    instance_level=True,
    definition=CLAIM_RESPONSE_REVIEW_OPERATION,
    permission="u",
)
OPERATIONS = (SUBMIT_CLAIM, SUBMIT_ELIGIBILITY, REVIEW, PUBLISH_TARIFFS)
