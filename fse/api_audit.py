"""An AuditEvent for every FHIR API interaction with personal data: who (client or user), what
(type, id, query with identifiers masked), which insured, when, and the outcome (status code).

Events are buffered in the worker and written in batches (one bulk insert a second), then sealed
into the hash chain like the others: auditing a read costs a fraction of the read. A worker that
crashes loses at most the last second's read events; the writes themselves are in the store's
history either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_profiles.identifiers import CIN_SYSTEM, cin_problem, masked_cin
from fse.audit import narrative
from fse.callers import Caller, caller_of
from fse.fhir_api.interactions import FhirService

log = logging.getLogger(__name__)

PERSONAL_TYPES = frozenset(
    {
        "Patient",
        "RelatedPerson",
        "Coverage",
        "Condition",
        "Encounter",
        "MedicationRequest",
        "MedicationDispense",
        "ServiceRequest",
        "Claim",
        "ClaimResponse",
        "ExplanationOfBenefit",
        "CoverageEligibilityRequest",
        "CoverageEligibilityResponse",
        "Provenance",
        "AuditEvent",
    }
)
"""What concerns an insured; the guide, practitioners and organisations are not personal data."""
PATIENT_PARAMS = ("patient", "subject", "beneficiary")
INSTANCE_CODES = {"GET": "read", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
ACTIONS = {
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "history-type": "E",
    "search-type": "E",
    "create": "C",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "operation": "E",
    "transaction": "E",
}
"""AuditEvent.action of each http://hl7.org/fhir/restful-interaction code (a query is E)."""
VERBS = {"R": "consulté", "C": "enregistré", "U": "modifié", "D": "supprimé", "E": "traité"}


def masked(param: str, value: str) -> str:
    """A searched identifier as the log shows it: a CIN masked as the screens' log masks it
    (``…/sid/cin|BE****56``), with or without its system; other identifiers as they are."""
    system, bar, code = value.rpartition("|")
    if param == "identifier" and (system == CIN_SYSTEM or (not bar and not cin_problem(code))):
        return f"{system}{bar}{masked_cin(code)}"
    return value


def interaction_of(method: str, path: str) -> tuple[str, str | None, str, str] | None:
    """(type, id, restful-interaction code, AuditEvent action) of a /fhir request about
    personal data, else None."""
    parts = path.removeprefix("/fhir").strip("/").split("/")
    if not parts or not parts[0]:
        return ("Bundle", None, "transaction", "E")
    if parts[0] == "$export-file":  # bulk data leaving: the kick-off is audited, so is each file
        return (parts[0], "/".join(parts[1:]) or None, "operation", "R")
    rtype = parts[0]
    if rtype not in PERSONAL_TYPES:
        return None
    rid = parts[1] if len(parts) > 1 and not parts[1].startswith(("$", "_")) else None
    if parts[-1].startswith("$"):
        code = "operation"
    elif "_history" in parts and rid is None:
        code = "history-type"
    elif "_history" in parts:
        code = "history-instance" if parts[-1] == "_history" else "vread"
    elif rid is None:
        code = "search-type" if method == "GET" or parts[-1] == "_search" else "create"
    else:
        code = INSTANCE_CODES.get(method, "read")
    return rtype, rid, code, ACTIONS[code]


CALLER_TTL_SECONDS = 300.0


class ApiAudit:
    def __init__(self, fhir: FhirService, zone: str) -> None:
        self.fhir = fhir
        self.zone = ZoneInfo(zone)
        self._pending: list[dict[str, Any]] = []
        self._callers: dict[str, tuple[float, Caller]] = {}

    def record(
        self, who: str, method: str, path: str, query: str, status: int, now: datetime
    ) -> None:
        target = interaction_of(method, path)
        if target is None:
            return
        rtype, rid, interaction, action = target
        items = parse_qsl(query, keep_blank_values=True)
        shown = urlencode([(k, masked(k, v)) for k, v in items], safe="*|/:,")
        patients = {v for k, v in items if k in PATIENT_PARAMS and v.startswith("Patient/")}
        if rtype == "Patient" and rid:
            patients.add(f"Patient/{rid}")
        what = f"{rtype}/{rid}" if rid else rtype
        entities: list[dict[str, Any]] = [
            {"what": {"reference": p}, "type": {"code": "1"}} for p in sorted(patients)
        ]
        accessed: dict[str, Any] = {"what": {"display": what}}
        if shown:
            accessed["description"] = shown
        entities.append(accessed)
        outcome = "0" if status < 400 else ("4" if status < 500 else "8")
        when = f"Le {now.astimezone(self.zone):%d/%m/%Y à %H:%M}"
        done = f"a {VERBS[action]} des données par l'API FHIR : {what}"
        self._pending.append(
            {
                "resourceType": "AuditEvent",
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                    "code": "rest",
                },
                "subtype": [
                    {"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}
                ],
                "action": action,
                "recorded": now.isoformat(timespec="milliseconds"),
                "outcome": outcome,
                "outcomeDesc": f"HTTP {status}",
                "text": {"when": when, "done": done + (f" ({status})" if status >= 400 else "")},
                "agent": [{"who": {"display": who}, "requestor": True}],
                "source": {"observer": {"display": "Plateforme FSE - API FHIR"}},
                "entity": entities,
            }
        )

    def drain(self) -> list[dict[str, Any]]:
        """Take the buffered events (to write them, or to drop them)."""
        batch, self._pending = self._pending, []
        return batch

    async def flush(self) -> int:
        """Write what is buffered; on failure the events go back to the buffer."""
        batch = self.drain()
        if not batch:
            return 0
        store = self.fhir.store
        try:
            async with store.transaction() as conn:
                events = [await self._complete(conn, event) for event in batch]
                await store.bulk_create(conn, [("AuditEvent", event) for event in events])
        except Exception:
            self._pending[:0] = batch
            raise
        return len(batch)

    async def _complete(self, conn: AsyncConnection, event: dict[str, Any]) -> dict[str, Any]:
        """The event with its agents named and its French sentence, from a buffered draft."""
        caller = await self._caller(conn, event["agent"][0]["who"]["display"])
        text = event["text"]
        return {
            **event,
            "agent": caller.agents(),
            "text": narrative(f"{text['when']}, {caller.named} {text['done']}."),
        }

    async def _caller(self, conn: AsyncConnection, principal: str) -> Caller:
        """``caller_of``, remembered a few minutes: a busy client is named once, not per read."""
        cached = self._callers.get(principal)
        if cached and time.monotonic() - cached[0] < CALLER_TTL_SECONDS:
            return cached[1]
        caller = await caller_of(self.fhir, conn, principal)
        if len(self._callers) > 10_000:
            self._callers.clear()
        self._callers[principal] = (time.monotonic(), caller)
        return caller

    async def flush_periodically(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.flush()
            except Exception:  # the database is down: keep them and retry
                log.exception("writing %d API audit events failed", len(self._pending))


class ApiAuditMiddleware:
    """Records each authenticated /fhir request once its response has started."""

    def __init__(self, app: ASGIApp, audit: ApiAudit) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/fhir"):
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            principal = scope.get("state", {}).get("principal")
            if principal is not None:
                self.audit.record(
                    principal.client_id,
                    scope["method"],
                    scope["path"],
                    scope.get("query_string", b"").decode("latin-1"),
                    status,
                    datetime.now().astimezone(),
                )
