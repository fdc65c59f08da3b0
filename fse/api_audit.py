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
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fse.audit import narrative
from fse.fhir_api.interactions import FhirService
from fse.security.tables import system_clients, users
from fse.security.users import ROLE_LABELS, Role

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
MASKED_PARAMS = frozenset({"identifier"})
ACTIONS = {"GET": "R", "POST": "C", "PUT": "U", "PATCH": "U", "DELETE": "D"}
VERBS = {"R": "consulté", "C": "enregistré", "U": "modifié", "D": "supprimé", "E": "traité"}


def mask(value: str) -> str:
    """``system|BE123456`` → ``system|******56``: the log shows a lookup, not the number."""
    system, bar, code = value.rpartition("|")
    hidden = "*" * max(len(code) - 2, 0) + code[-2:]
    return f"{system}{bar}{hidden}"


def _target(path: str) -> tuple[str, str | None, str] | None:
    """(type, id, interaction) of a /fhir path about personal data, else None."""
    parts = path.removeprefix("/fhir").strip("/").split("/")
    if not parts or not parts[0]:
        return ("Bundle", None, "transaction")
    if parts[0] == "$export-file":  # bulk data leaving: the kick-off is audited, so is each file
        return (parts[0], "/".join(parts[1:]) or None, "export-file")
    rtype = parts[0]
    if rtype not in PERSONAL_TYPES:
        return None
    rid = parts[1] if len(parts) > 1 and not parts[1].startswith(("$", "_")) else None
    tail = parts[-1] if len(parts) > 1 else ""
    interaction = tail if tail.startswith("$") else ("instance" if rid else "type")
    return rtype, rid, interaction


@dataclass(frozen=True)
class Agent:
    """Who called, as the log names them: a person with their role and the organisation they
    act for (their PractitionerRole), or a CNSS system client."""

    name: str
    role: str
    reference: str | None = None
    organization: str | None = None
    organization_name: str | None = None


AGENT_TTL_SECONDS = 300.0


class ApiAudit:
    def __init__(self, fhir: FhirService, zone: str) -> None:
        self.fhir = fhir
        self.zone = ZoneInfo(zone)
        self._pending: list[dict[str, Any]] = []
        self._agents: dict[str, tuple[float, Agent]] = {}

    def record(
        self, who: str, method: str, path: str, query: str, status: int, now: datetime
    ) -> None:
        target = _target(path)
        if target is None:
            return
        rtype, rid, interaction = target
        items = parse_qsl(query, keep_blank_values=True)
        shown = urlencode(
            [(k, mask(v) if k in MASKED_PARAMS else v) for k, v in items], safe="*|/:,"
        )
        action = "E" if interaction.startswith("$") or (method == "GET" and not rid) else None
        action = action or ACTIONS.get(method, "E")
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
        who = event["agent"][0]["who"]["display"]
        agent = await self._agent(conn, who)
        caller: dict[str, Any] = {
            "who": {"reference": agent.reference} if agent.reference else {"display": who},
            "name": agent.name,
            "role": [{"text": agent.role}],
            "requestor": True,
        }
        agents = [caller]
        if agent.organization:
            agents.append({"who": {"reference": agent.organization}, "requestor": False})
        named = agent.name + (f" ({agent.organization_name})" if agent.organization_name else "")
        text = event["text"]
        return {
            **event,
            "agent": agents,
            "text": narrative(f"{text['when']}, {named} {text['done']}."),
        }

    async def _agent(self, conn: AsyncConnection, who: str) -> Agent:
        cached = self._agents.get(who)
        if cached and time.monotonic() - cached[0] < AGENT_TTL_SECONDS:
            return cached[1]
        agent = await self._lookup(conn, who)
        if len(self._agents) > 10_000:
            self._agents.clear()
        self._agents[who] = (time.monotonic(), agent)
        return agent

    async def _lookup(self, conn: AsyncConnection, who: str) -> Agent:
        if not who.startswith("user:"):
            name = await conn.scalar(
                select(system_clients.c.name).where(system_clients.c.client_id == who)
            )
            return Agent(f"système {name or who}", "Système d'information CNSS")
        row = (
            await conn.execute(select(users).where(users.c.username == who.removeprefix("user:")))
        ).first()
        if row is None:
            return Agent(who.removeprefix("user:"), "Utilisateur")
        role = ROLE_LABELS.get(Role(row.role), row.role)
        if not row.practitioner:
            return Agent(row.display_name, role)
        query = self.fhir.parse_search(
            "PractitionerRole", [("practitioner", row.practitioner), ("_count", "20")], True
        )
        page = await self.fhir.store.search(conn, query)
        for match in page.matches:
            practitioner_role = orjson.loads(match.content or "{}")
            organization = (practitioner_role.get("organization") or {}).get("reference")
            if practitioner_role.get("active") is not False and organization:
                names = await self.fhir.display_names(conn, [organization])
                return Agent(
                    row.display_name, role, row.practitioner, organization, names[organization]
                )
        return Agent(row.display_name, role, row.practitioner)

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
