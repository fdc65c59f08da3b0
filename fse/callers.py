"""Who is calling, named as the audit trail and the insured's log name them: a person with their
role, their Practitioner and the organisation of their PractitionerRole (the pharmacy, the
clinic), or a CNSS system client by its registered name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.systems import CLIENT_ID_SYSTEM
from fse.fhir_api.interactions import FhirService
from fse.security.tables import system_clients, users
from fse.security.users import ROLE_LABELS, Role

SYSTEM_ROLE = "Système d'information CNSS"


@dataclass(frozen=True)
class Caller:
    principal: str
    """The system client's id, or ``user:<username>``."""
    display: str
    """The client's registered name, or the person's name."""
    role: str
    reference: str | None = None
    """The person's Practitioner, if any."""
    organization: str | None = None
    organization_name: str | None = None

    @property
    def named(self) -> str:
        """As a sentence names them: 'le système cnss-liquidation', 'Dr Test (Pharmacie…)'."""
        who = f"le système {self.display}" if self.role == SYSTEM_ROLE else self.display
        return who + (f" ({self.organization_name})" if self.organization_name else "")

    def agents(self) -> list[dict[str, Any]]:
        """AuditEvent.agent: the caller (requestor), then the organisation they act for."""
        who: dict[str, Any] = (
            {"reference": self.reference}
            if self.reference
            else {
                "identifier": {"system": CLIENT_ID_SYSTEM, "value": self.principal},
                "display": self.display,
            }
        )
        agents = [
            {"who": who, "name": self.display, "role": [{"text": self.role}], "requestor": True}
        ]
        if self.organization:
            agents.append({"who": {"reference": self.organization}, "requestor": False})
        return agents


async def caller_of(fhir: FhirService, conn: AsyncConnection, principal: str) -> Caller:
    if not principal.startswith("user:"):
        name = await conn.scalar(
            select(system_clients.c.name).where(system_clients.c.client_id == principal)
        )
        return Caller(principal, name or principal, SYSTEM_ROLE)
    username = principal.removeprefix("user:")
    row = (await conn.execute(select(users).where(users.c.username == username))).first()
    if row is None:
        return Caller(principal, username, "Utilisateur")
    role = ROLE_LABELS.get(Role(row.role), row.role)
    if not row.practitioner:
        return Caller(principal, row.display_name, role)
    query = fhir.parse_search(
        "PractitionerRole", [("practitioner", row.practitioner), ("_count", "20")], True
    )
    for match in (await fhir.store.search(conn, query)).matches:
        practitioner_role = orjson.loads(match.content or "{}")
        organization = (practitioner_role.get("organization") or {}).get("reference")
        if practitioner_role.get("active") is not False and organization:
            names = await fhir.display_names(conn, [organization])
            return Caller(
                principal,
                row.display_name,
                role,
                row.practitioner,
                organization,
                names[organization],
            )
    return Caller(principal, row.display_name, role, row.practitioner)
