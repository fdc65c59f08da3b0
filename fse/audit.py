"""Record who read or changed whose personal data, when and through what (AuditEvent, FHIR R4).

Issue 7 chains these records; every feature that shows an insured's data calls ``audit_read``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fse.fhir_api.interactions import FhirService


async def audit_read(
    fhir: FhirService,
    reader: str,
    patient_ids: list[str],
    what: str,
    source: str,
    organization: str | None = None,
) -> None:
    agent: dict[str, Any] = {"who": {"reference": reader}, "requestor": True}
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": "110110",
            "display": "Patient Record",
        },
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "search-type"}],
        "action": "R",
        "recorded": datetime.now().astimezone().isoformat(timespec="seconds"),
        "outcome": "0",
        "agent": [agent],
        "source": {"observer": {"display": source}},
        "entity": [
            {"what": {"reference": f"Patient/{pid}"}, "description": what} for pid in patient_ids
        ],
    }
    if organization:  # the pharmacy or clinic the reader acts for
        event["agent"].append({"who": {"reference": organization}, "requestor": False})
    async with fhir.store.transaction() as conn:
        written = await fhir.create(conn, "AuditEvent", event)
    fhir.announce([written.stored])


def change_event(
    who: str,
    description: str,
    targets: list[str],
    source: str,
    when: datetime,
    organization: str | None = None,
) -> dict[str, Any]:
    """The AuditEvent of a change made through a screen (a cancellation, a reversal), for the
    caller to write in the same transaction as the change itself."""
    agents: list[dict[str, Any]] = [{"who": {"reference": who}, "requestor": True}]
    if organization:
        agents.append({"who": {"reference": organization}, "requestor": False})
    return {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "update"}],
        "action": "U",
        "recorded": when.isoformat(timespec="seconds"),
        "outcome": "0",
        "outcomeDesc": description,
        "agent": agents,
        "source": {"observer": {"display": source}},
        "entity": [{"what": {"reference": target}} for target in targets],
    }
