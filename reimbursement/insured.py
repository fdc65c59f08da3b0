"""Find the insured a professional names by immatriculation or CIN: the one lookup the doctor's
and the pharmacist's screens (and the agents' console) share.

By immatriculation: the main insured, then every beneficiary of their rights (a beneficiary has
no immatriculation of their own); by CIN: that person. Auditing the lookup, and anything a
screen adds (rights, open prescriptions, limits), stays with the screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.identifiers import CIN_RE, IMMATRICULATION_RE, masked_cin
from fhir_profiles.systems import CIN_SYSTEM, IMMATRICULATION_SYSTEM
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.reading import ALL, search
from reimbursement.claims import reference_id

SYSTEMS = {"immatriculation": IMMATRICULATION_SYSTEM, "cin": CIN_SYSTEM}


@dataclass(frozen=True)
class InsuredNumber:
    """What was typed, once read: which identifier, and its value in the stored form."""

    kind: Literal["immatriculation", "cin"]
    value: str

    @property
    def searched(self) -> str:
        """The number fit for an audit sentence (a CIN is masked)."""
        return masked_cin(self.value) if self.kind == "cin" else self.value


def compact(text: str) -> str:
    """The typed text as identifiers are compared: capitals, no spaces."""
    return text.strip().upper().replace(" ", "")


def insured_number(text: str) -> InsuredNumber | None:
    """The immatriculation (9 digits) or CIN ``text`` is, or None if it is neither."""
    value = compact(text)
    if IMMATRICULATION_RE.match(value):
        return InsuredNumber("immatriculation", value)
    if CIN_RE.match(value):
        return InsuredNumber("cin", value)
    return None


async def insured_people(
    fhir: FhirService, conn: AsyncConnection, number: InsuredNumber
) -> list[dict[str, Any]]:
    """The Patients ``number`` names: by CIN that person; by immatriculation the main insured
    first, then the beneficiaries of the rights they hold (in the store's order)."""
    token = f"{SYSTEMS[number.kind]}|{number.value}"
    people = await search(fhir, conn, "Patient", [("identifier", token)], count=ALL)
    if number.kind != "immatriculation" or not people:
        return people
    main = people[0]
    covers = await search(
        fhir, conn, "Coverage", [("subscriber", f"Patient/{main['id']}")], count=ALL
    )
    others = sorted(
        {pid for c in covers if (pid := reference_id(c.get("beneficiary"), "Patient"))}
        - {main["id"]}
    )
    if not others:
        return [main]
    return [main, *await search(fhir, conn, "Patient", [("_id", ",".join(others))], count=ALL)]
