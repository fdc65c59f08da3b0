"""An AuditEvent for every FHIR API interaction with personal data: who (client or user), what
(type, id, query with identifiers masked), which insured, when, and the outcome (status code).

Each request's record is durable before its answer's first byte leaves: one row of the access
log (``fse/access_log.py``), committed while the response waits. A worker that dies loses no
answered request's record; if the record cannot be written, a request that would have
succeeded is answered 503 instead (never an answer that is not on the record). Rows become
AuditEvents in batches a second later (naming the caller, indexing), then are sealed into the
hash chain like the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_profiles.identifiers import cin_problem, masked_cin
from fhir_profiles.systems import CIN_SYSTEM
from fse.access_log import Spool, append, take
from fse.audit import NAME_TTL_SECONDS, narrative
from fse.callers import Caller, caller_of
from fse.errors import ErrorCode, Issue, operation_outcome
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
READS = frozenset({"read", "vread", "history-instance", "history-type", "search-type"})
VERBS = {"R": "consulté", "C": "enregistré", "U": "modifié", "D": "supprimé", "E": "traité"}


def masked(param: str, value: str) -> str:
    """A searched identifier as the log shows it: a CIN masked as the screens' log masks it
    (``…/sid/cin|BE****56``), with or without its system, chained (``patient.identifier``)
    or not; other identifiers as they are."""
    system, bar, code = value.rpartition("|")
    searched = param.rsplit(".", 1)[-1].split(":", 1)[0]  # patient.identifier, identifier:of-type
    if searched == "identifier" and (system == CIN_SYSTEM or (not bar and not cin_problem(code))):
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


CALLER_TTL_SECONDS = NAME_TTL_SECONDS
BATCH = 500
RETRY_AFTER_SECONDS = 5
AUDITED = "audit_entities"
"""Key of ``request.state``: what a handler names for its AuditEvent (the claim and insured of
a ``$submit``), beyond what the URL shows."""


def name_for_audit(state: Any, entities: list[dict[str, Any]]) -> None:
    """Let a handler name the resources and the insured its request concerned
    (``AuditEvent.entity``); patients as ``{"what": {"reference": "Patient/…"}}``."""
    setattr(state, AUDITED, entities)


class ApiAudit:
    def __init__(self, fhir: FhirService, zone: str, spool: Spool | None = None) -> None:
        self.fhir = fhir
        self.zone = ZoneInfo(zone)
        self.spool = spool
        """The access log's writer on PostgreSQL; None: through the store's engine (SQLite)."""
        self._pending: list[str] = []
        """Drafts the database refused (it was down): written at the next flush."""
        self._callers: dict[str, tuple[float, Caller]] = {}

    def draft(
        self,
        who: str,
        method: str,
        path: str,
        query: str,
        status: int,
        now: datetime,
        named: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any] | None:
        """The AuditEvent of a request as known when its answer starts (the caller's name and
        the French sentence are completed when it is stored), or None if not audited."""
        target = interaction_of(method, path)
        if target is None:
            return None
        rtype, rid, interaction, action = target
        items = parse_qsl(query, keep_blank_values=True)
        shown = urlencode([(k, masked(k, v)) for k, v in items], safe="*|/:,")
        patients = {v for k, v in items if k in PATIENT_PARAMS and v.startswith("Patient/")}
        if rtype == "Patient" and rid:
            patients.add(f"Patient/{rid}")
        others = []
        for entity in named or []:
            reference = entity.get("what", {}).get("reference", "")
            if reference.startswith("Patient/"):
                patients.add(reference)
            else:
                others.append(entity)
        what = f"{rtype}/{rid}" if rid else rtype
        entities: list[dict[str, Any]] = [
            {"what": {"reference": p}, "type": {"code": "1"}} for p in sorted(patients)
        ]
        entities.extend(others)
        accessed: dict[str, Any] = {"what": {"display": what}}
        if shown:
            accessed["description"] = shown
        entities.append(accessed)
        outcome = "0" if status < 400 else ("4" if status < 500 else "8")
        when = f"Le {now.astimezone(self.zone):%d/%m/%Y à %H:%M}"
        done = f"a {VERBS[action]} des données par l'API FHIR : {what}"
        return {
            "resourceType": "AuditEvent",
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                "code": "rest",
            },
            "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}],
            "action": action,
            "recorded": now.isoformat(timespec="milliseconds"),
            "outcome": outcome,
            "outcomeDesc": f"HTTP {status}",
            "text": {"when": when, "done": done + (f" ({status})" if status >= 400 else "")},
            "agent": [{"who": {"display": who}, "requestor": True}],
            "source": {"observer": {"display": "Plateforme FSE - API FHIR"}},
            "entity": entities,
        }

    async def write(self, draft: dict[str, Any], change: bool = True) -> bool:
        """Make a request's record durable now; False (kept in memory, written at the next
        flush) when the database refuses it. A ``change``'s record waits for the disk as the
        change did; a read's is committed without waiting for the WAL's fsync (the spool)."""
        text = orjson.dumps(draft).decode()
        try:
            if self.spool is not None:
                await self.spool.append([text], wait_for_disk=change)
            else:
                await append(self.fhir.store.engine, [text])
        except Exception as error:  # the database is down: kept here, written when it is back
            log.warning("the access log cannot be written: %s", error)
            self._pending.append(text)
            return False
        return True

    async def drain(self) -> list[dict[str, Any]]:
        """Take every record not yet an AuditEvent, and drop it (tests: what setting up logged)."""
        drafts, self._pending = self._pending, []
        async with self.fhir.store.transaction() as conn:
            while taken := await take(conn, BATCH):
                drafts.extend(taken)
        return [orjson.loads(draft) for draft in drafts]

    async def flush(self) -> int:
        """Turn the access log into AuditEvents, oldest first; returns how many were stored."""
        if self._pending:
            pending, self._pending = self._pending, []
            try:
                await append(self.fhir.store.engine, pending)
            except Exception:
                self._pending[:0] = pending
                raise
        stored = 0
        store = self.fhir.store
        while True:
            async with store.transaction() as conn:
                drafts = await take(conn, BATCH)
                events = [await self._complete(conn, orjson.loads(draft)) for draft in drafts]
                if events:
                    await store.bulk_create(conn, [("AuditEvent", event) for event in events])
            stored += len(events)
            if len(drafts) < BATCH:
                return stored

    async def _complete(self, conn: AsyncConnection, event: dict[str, Any]) -> dict[str, Any]:
        """The event with its agents named and its French sentence, from a draft."""
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
            except Exception as error:  # the database is down: the rows wait, retried next round
                log.warning("storing API audit events failed (%s); retrying", error)


UNRECORDED = orjson.dumps(
    operation_outcome(
        [
            Issue(
                ErrorCode.DATABASE_UNAVAILABLE,
                "this request could not be recorded in the access log (the database cannot be "
                "reached), so its answer is withheld; retry later",
                issue_type="transient",
            )
        ]
    )
)


class ApiAuditMiddleware:
    """Records each authenticated /fhir request, durably, before its response starts."""

    def __init__(self, app: ASGIApp, audit: ApiAudit) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/fhir"):
            await self.app(scope, receive, send)
            return
        started = withheld = False

        async def record(status: int) -> bool:
            """Write the record; False if it could not be."""
            state = scope.get("state", {})
            principal = state.get("principal")
            if principal is None:
                return True
            draft = self.audit.draft(
                principal.client_id,
                scope["method"],
                scope["path"],
                scope.get("query_string", b"").decode("latin-1"),
                status,
                datetime.now().astimezone(),
                state.get(AUDITED),
            )
            if draft is None:
                return True
            read = scope["method"] in ("GET", "HEAD") or draft["subtype"][0]["code"] in READS
            return await self.audit.write(draft, change=not read)

        async def sending(message: Message) -> None:
            nonlocal started, withheld
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                if not await record(status) and status < 500:
                    withheld = True
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 503,
                            "headers": [
                                (b"content-type", b"application/fhir+json"),
                                (b"content-length", str(len(UNRECORDED)).encode()),
                                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": UNRECORDED})
                    return
            if withheld:
                return
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if not started:  # the outer handler answers 500: on the record too, if possible
                await record(500)
            raise
