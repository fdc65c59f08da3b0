"""Find the insured a doctor is about to see, and what their rights are today.

By immatriculation: the main insured and every beneficiary on their rights (the doctor picks who
is in front of them); by CIN: that person. Each lookup is recorded as an AuditEvent naming who
read whose data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fhir_profiles.systems import CIN_SYSTEM, IMMATRICULATION_SYSTEM
from fse.audit import audit_read as record_read
from fse.errors import Gone, NotFound
from fse.fhir_api.interactions import FhirService
from fse.resources import name_of
from fse.web.formats import date_fr
from reimbursement.context import Insured as InsuredRecord
from reimbursement.context import beneficiary_of, insured_record
from reimbursement.core.adjudication import Books
from reimbursement.core.model import Exoneration, Rights
from reimbursement.core.rights import age_on, rights_on
from reimbursement.insured import insured_number, insured_people

RELATIONSHIPS = {"self": "Assuré principal", "spouse": "Conjoint", "child": "Enfant"}
REGIMES = {
    "salaries": "AMO salariés",
    "tns": "AMO travailleurs non salariés",
    "tadamon": "AMO Tadamon",
    "achamil": "AMO Achamil",
    "public": "Secteur public",
}


class NotAnIdentifier(ValueError):
    """The search text is neither an immatriculation nor a CIN."""


@dataclass(frozen=True)
class Insured:
    patient_id: str
    name: str
    arabic_name: str | None
    birth_date: date | None
    age: int | None
    gender: str | None
    immatriculation: str | None
    cin: str | None
    relationship: str
    main_insured: str | None
    rights: Rights
    exonerations: tuple[Exoneration, ...]
    regime_code: str | None = None
    """The regime of today's rights, else of the latest rights period (a deceased insured,
    closed rights: the doctor still sees which regime they were under)."""
    deceased_on: date | None = None
    record: InsuredRecord | None = field(default=None, repr=False, compare=False)
    """What the page read (Patient, rights periods, exonerations): the review's
    pre-settlement drafts from it instead of reading the insured again."""

    @property
    def regime(self) -> str:
        code = self.rights.regime or self.regime_code or ""
        return REGIMES.get(code, code or "régime inconnu")

    @property
    def deceased(self) -> str:
        """The marker shown beside the name (empty for the living)."""
        if self.deceased_on is None:
            return ""
        ending = "e" if self.gender == "female" else ""
        return f"décédé{ending} le {date_fr(self.deceased_on)}"

    @property
    def rights_line(self) -> str:
        """Closed or not yet open rights in one label: "Droits fermés : cotisations impayées",
        "Droits non ouverts : stage en cours (ouverture le 01/03/2027)"; never the label
        twice, nor a space before the full stop."""
        message = self.rights.message
        text = (
            message[:1].upper() + message[1:]
            if message.startswith("droits ")
            else f"Droits non ouverts : {message}"
        )
        if self.rights.opens_on is not None:
            text += f" (ouverture le {date_fr(self.rights.opens_on)})"
        return text


def _identifier(resource: dict[str, Any], system: str) -> str | None:
    return next(
        (i.get("value") for i in resource.get("identifier", []) if i.get("system") == system),
        None,
    )


def _arabic(patient: dict[str, Any]) -> str | None:
    for name in patient.get("name", []) or []:
        if any(e.get("valueCode") == "ar" for e in name.get("extension", []) or []):
            return f"{' '.join(name.get('given', []))} {name.get('family', '')}".strip()
    return None


def _latin(patient: dict[str, Any]) -> dict[str, Any]:
    """The patient with its Latin-script name first (for ``name_of``)."""
    latin = [
        n
        for n in patient.get("name", []) or []
        if not any(e.get("valueCode") == "ar" for e in n.get("extension", []) or [])
    ]
    return {**patient, "name": latin or patient.get("name", [])}


async def find_insured(
    fhir: FhirService, books: Books, text: str, today: date, reader: str
) -> list[Insured]:
    """Raises NotAnIdentifier for text that is neither a 9-digit immatriculation nor a CIN."""
    number = insured_number(text)
    if number is None:
        raise NotAnIdentifier("Saisissez un numéro d'immatriculation (9 chiffres) ou une CIN.")
    found: list[Insured] = []
    async with fhir.store.snapshot() as conn:
        for patient in await insured_people(fhir, conn, number):
            found.append(_insured(await insured_record(fhir, conn, patient["id"]), books, today))
    if found:
        await audit_read(
            fhir, reader, [i.patient_id for i in found], f"recherche {number.searched}"
        )
    return found


async def insured_by_id(
    fhir: FhirService,
    books: Books,
    patient_id: str,
    today: date,
    reader: str,
    provider: str | None = None,
) -> Insured | None:
    """One insured (the one the doctor picked), audited like a search. ``provider``: a
    claim's provider read with them, for a page that settles against them (the review's
    pre-settlement, through ``Insured.record``)."""
    async with fhir.store.snapshot() as conn:
        try:  # the Patient with their Coverages and Conditions (and provider): one statement
            record = await insured_record(fhir, conn, patient_id, provider)
        except (NotFound, Gone):
            return None
    insured = _insured(record, books, today)
    await audit_read(fhir, reader, [patient_id], "feuille de soins")
    return insured


def _insured(record: InsuredRecord, books: Books, today: date) -> Insured:
    patient, periods, subscribers = record.patient, record.periods, record.subscribers
    rights = rights_on(beneficiary_of(patient), periods, today, books.rights)
    relationship = next(
        (p.relationship for p in periods if p.coverage_id == rights.coverage_id),
        periods[0].relationship if periods else "self",
    )
    main = subscribers.get(rights.coverage_id or "")
    main_name = name_of(_latin(main)) if main and main["id"] != patient["id"] else None
    beneficiary = beneficiary_of(patient)
    birth = beneficiary.birth_date
    latest = max(periods, key=lambda p: p.start, default=None)
    return Insured(
        patient_id=patient["id"],
        name=name_of(_latin(patient)),
        arabic_name=_arabic(patient),
        birth_date=birth,
        age=age_on(birth, today) if birth else None,
        gender=patient.get("gender"),
        immatriculation=_identifier(patient, IMMATRICULATION_SYSTEM)
        or (_identifier(main, IMMATRICULATION_SYSTEM) if main else None),
        cin=_identifier(patient, CIN_SYSTEM),
        relationship=RELATIONSHIPS.get(relationship, relationship),
        main_insured=main_name,
        rights=rights,
        exonerations=record.exonerations,
        regime_code=rights.regime or (latest.regime if latest else None),
        deceased_on=beneficiary.deceased_on,
        record=record,
    )


async def audit_read(fhir: FhirService, reader: str, patient_ids: list[str], what: str) -> None:
    await record_read(fhir, reader, patient_ids, what, "Plateforme FSE - espace médecin")
