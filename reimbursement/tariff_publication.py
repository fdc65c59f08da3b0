"""``POST /fhir/CodeSystem/$publish-tariffs``: CNSS systems publish a new dated TNR version or
medicines list through the FHIR API, as ``fse tariffs import`` does from a file.

The body is a Parameters: ``version`` (valueAttachment, the version's JSON in base64, in the
format of ``reimbursement/data/``) and ``dryRun`` (valueBoolean). The answer is a Parameters
with what changes against the version in force on its date, and whether it was published.
Publishing is audited, and this server reloads its books at once (the others within seconds).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from fastapi import Response

from fhir_profiles.systems import PUBLISH_TARIFFS_OPERATION
from fse.audit import change_event
from fse.errors import BadRequest, ErrorCode, Unprocessable
from fse.fhir_api.http import read_body
from fse.fhir_api.operations import Operation, OperationCall
from fse.resources import check_type, parse_json
from fse.responses import fhir_response
from reimbursement.reference_data import load_books
from reimbursement.state import settlement_of
from reimbursement.tariff_import import ImportPlan, ImportRefused, plan_import, publish

VERSION_PATH = "Parameters.parameter.where(name='version').valueAttachment"


def _arguments(body: dict[str, Any]) -> tuple[bytes, bool]:
    check_type(body, "Parameters")
    named = {p.get("name"): p for p in body.get("parameter", []) if isinstance(p, dict)}
    attachment = (named.get("version") or {}).get("valueAttachment") or {}
    if "data" not in attachment:
        raise BadRequest(
            "parameter 'version' (valueAttachment with the version's JSON in base64) is required",
            (VERSION_PATH,),
            code=ErrorCode.PRECONDITION_MISSING,
        )
    try:
        raw = base64.b64decode(attachment["data"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise BadRequest(
            "version.data is not base64", (f"{VERSION_PATH}.data",), code=ErrorCode.INVALID_REQUEST
        ) from None
    dry_run = (named.get("dryRun") or {}).get("valueBoolean", False) is True
    return raw, dry_run


def _answer(plan: ImportPlan, published: bool) -> dict[str, Any]:
    def count(name: str, value: int) -> dict[str, Any]:
        return {"name": name, "valueInteger": value}

    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "kind", "valueCode": plan.kind},
            {"name": "versionId", "valueString": plan.version_id},
            {"name": "validFrom", "valueDate": plan.valid_from.isoformat()},
            count("rows", plan.rows),
            count("added", len(plan.added)),
            count("changed", len(plan.changed)),
            count("removed", len(plan.removed)),
            count("unchanged", plan.unchanged),
            {"name": "published", "valueBoolean": published},
            {"name": "report", "valueString": "\n".join(plan.report())},
        ],
    }


async def publish_tariffs(call: OperationCall) -> Response:
    settings = call.service.settings
    raw, dry_run = _arguments(parse_json(await read_body(call.request, settings.max_body_bytes)))
    settlement = settlement_of(call.request)
    try:
        plan = plan_import(raw, "version", settlement.books)
    except ImportRefused as refused:
        raise Unprocessable(
            str(refused), (VERSION_PATH,), code=ErrorCode.REFERENCE_DATA_REFUSED
        ) from None
    if dry_run:
        return fhir_response(_answer(plan, False))
    publisher = call.request.state.principal.client_id
    what = "la TNR" if plan.kind == "tnr" else "la liste des médicaments"
    event = change_event(
        publisher,
        f"{what} {plan.version_id} publiée, en vigueur à partir du "
        f"{plan.valid_from:%d/%m/%Y} ({len(plan.added)} nouveaux, {len(plan.changed)} modifiés, "
        f"{len(plan.removed)} retirés)",
        [],
        "Plateforme FSE - référentiels",
        datetime.now(UTC),
        settlement.schedule.zone,
        action="C",
    )
    event["entity"] = [{"what": {"display": f"{plan.kind} {plan.version_id}"}}]
    async with call.service.store.transaction() as conn:
        # The record first: a publication that cannot be audited is not made.
        await call.service.create(conn, "AuditEvent", event)
        publish(raw, plan, settings.reference_data_dir)
    settlement.books = load_books(published=settings.reference_data_dir)
    return fhir_response(_answer(plan, True))


PUBLISH_TARIFFS = Operation(
    name="publish-tariffs",
    resource_types=("CodeSystem",),
    handler=publish_tariffs,
    definition=PUBLISH_TARIFFS_OPERATION,
    permission="c",
)
