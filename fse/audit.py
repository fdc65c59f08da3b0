"""Record who read or changed whose personal data, when and through what (AuditEvent, FHIR R4).

Every feature that shows an insured's data calls ``audit_read``; ``fse.audit_chain`` seals the
events into a hash chain. Each event carries a sentence in plain French (its narrative) so that
the insured's access log (``GET /fhir/AuditEvent?patient=…``) reads as "who looked at what".
"""

from __future__ import annotations

import base64
import hashlib
import html
import time
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from fse.fhir_api.interactions import FhirService
from fse.runtime import Runtime


async def audit_read(
    fhir: FhirService,
    reader: str,
    patient_ids: list[str],
    what: str,
    source: str,
    organization: str | None = None,
) -> None:
    """Record that ``reader`` saw these insured's data, unless the same reader's read of the
    same insured for the same purpose was recorded less than ``audit_read_window_seconds`` ago:
    the form, review, signature and signed sheet of one visit are one consultation for the
    insured, not four lines of their log. The mark is set once the event is committed, so a
    lost cache (Redis down, a restart) records a read again rather than missing one."""
    window = fhir.settings.audit_read_window_seconds
    mark = read_mark(reader, organization, patient_ids, what, source)
    if window and await _recorded_lately(fhir.runtime, mark):
        return
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
        names = await _names(fhir, conn, [reader, *([organization] if organization else [])])
        who = names[reader] + (f" ({names[organization]})" if organization else "")
        moment = datetime.now(ZoneInfo(fhir.settings.payment_timezone))
        event["text"] = narrative(f"{_when(moment)}, {who} a consulté vos données : {what}.")
        # Built here, proven valid by tests/fse/test_audit_read.py: not validated per read.
        stored = await fhir.create_generated(conn, "AuditEvent", event)
    fhir.announce([stored])
    if window:
        until = repr(time.time() + window).encode()
        await fhir.runtime.local.set(mark, until, window)
        await fhir.runtime.cache.set(mark, until, window)


NAME_TTL_SECONDS = 300.0
"""How long this process names a reader (and their pharmacy or clinic) as it last read them:
a doctor's pages each leave a read, their name is read once (as the access log names its
callers, ``fse.api_audit.CALLER_TTL_SECONDS``)."""


async def _names(fhir: FhirService, conn: AsyncConnection, references: list[str]) -> dict[str, str]:
    """``FhirService.display_names``, remembered ``NAME_TTL_SECONDS`` in this process."""
    local = fhir.runtime.local
    names: dict[str, str] = {}
    for reference in references:
        if (known := await local.get(f"audit:name:{reference}")) is not None:
            names[reference] = known.decode()
    missing = [r for r in references if r not in names]
    if missing:
        for reference, name in (await fhir.display_names(conn, missing)).items():
            names[reference] = name
            await local.set(f"audit:name:{reference}", name.encode(), NAME_TTL_SECONDS)
    return names


async def _recorded_lately(runtime: Runtime, mark: str) -> bool:
    """This process's memory first, then the shared cache; a shared mark says until when it
    holds, so this process keeps it no longer than the window."""
    if await runtime.local.get(mark) is not None:
        return True
    shared = await runtime.cache.get(mark)
    if shared is None:
        return False
    left = float(shared) - time.time()
    if left > 0:
        await runtime.local.set(mark, shared, left)
    return True


def read_mark(
    reader: str, organization: str | None, patient_ids: list[str], what: str, source: str
) -> str:
    """The cache key of one consultation (hashed: a search may name many insured)."""
    parts = "\x1f".join([reader, organization or "", what, source, *sorted(patient_ids)])
    return "audit-read:" + hashlib.blake2b(parts.encode(), digest_size=16).hexdigest()


def narrative(sentence: str) -> dict[str, str]:
    """A FHIR narrative holding one French sentence (escaped XHTML)."""
    return {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{html.escape(sentence)}</div>',
    }


def _when(moment: datetime) -> str:
    return f"Le {moment:%d/%m/%Y à %H:%M}"


def change_event(
    who: str,
    description: str,
    targets: list[str],
    source: str,
    when: datetime,
    zone: tzinfo,
    organization: str | None = None,
    action: str = "U",
) -> dict[str, Any]:
    """The AuditEvent of a change made through a screen or an operation (a cancellation, a
    reversal, a publication: ``action`` C or U), for the caller to write in the same
    transaction as the change itself."""
    agents: list[dict[str, Any]] = [{"who": {"reference": who}, "requestor": True}]
    if organization:
        agents.append({"who": {"reference": organization}, "requestor": False})
    return {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
        "subtype": [
            {
                "system": "http://hl7.org/fhir/restful-interaction",
                "code": "create" if action == "C" else "update",
            }
        ],
        "action": action,
        "recorded": when.isoformat(timespec="seconds"),
        "outcome": "0",
        "text": narrative(f"{_when(when.astimezone(zone))} : {description}."),
        "outcomeDesc": description,
        "agent": agents,
        "source": {"observer": {"display": source}},
        "entity": [{"what": {"reference": target}} for target in targets],
    }


def export_event(
    agents: list[dict[str, Any]],
    who: str,
    what: str,
    request_url: str,
    patient_id: str | None,
    when: datetime,
    zone: tzinfo,
) -> dict[str, Any]:
    """The AuditEvent of a bulk export kick-off (DICOM "Export"): who exported what, with the
    request URL in ``entity.query``; one insured's export names them, so it shows in their
    access log (``AuditEvent?patient=``)."""
    entity: dict[str, Any] = {
        "description": what,
        "query": base64.b64encode(request_url.encode()).decode(),
    }
    if patient_id is not None:
        entity["what"] = {"reference": f"Patient/{patient_id}"}
        sentence = f"{_when(when.astimezone(zone))}, {who} a exporté vos données : {what}."
    else:
        sentence = f"{_when(when.astimezone(zone))}, {who} a lancé un export en masse : {what}."
    return {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": "110106",
            "display": "Export",
        },
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "operation"}],
        "action": "E",
        "recorded": when.isoformat(timespec="seconds"),
        "outcome": "0",
        "text": narrative(sentence),
        "agent": agents,
        "source": {"observer": {"display": "Plateforme FSE - export FHIR en masse"}},
        "entity": [entity],
    }
