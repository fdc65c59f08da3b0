"""A doctor's care sheets as they were signed: read back from the FHIR store by number."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fhir_profiles.systems import (
    CARE_SHEET_SYSTEM,
    CIN_SYSTEM,
    CONSULTATION_SYSTEM,
    IMMATRICULATION_SYSTEM,
    INPE_SYSTEM,
    PRESCRIPTION_SYSTEM,
)
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.reading import Lookup, find_each, search
from fse.resources import name_of
from reimbursement.amounts import AmountLine, amount_lines, totals
from reimbursement.status import (
    ClaimStatus,
    claim_facts,
    hold_reason,
    payment_date_of,
    status_of,
)


@dataclass
class SheetView:
    number: str
    encounter: dict[str, Any]
    patient: dict[str, Any]
    claim: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    medicines: list[dict[str, Any]] = field(default_factory=list)
    labs: list[dict[str, Any]] = field(default_factory=list)
    lines: list[AmountLine] = field(default_factory=list)
    doctor: dict[str, Any] = field(default_factory=dict)
    status: ClaimStatus = field(default_factory=lambda: status_of(None))
    """The sheet's one status (``reimbursement.status``): what every page says of its money."""
    immatriculation: str | None = None
    """The insured's immatriculation: their own, or their main insured's for a beneficiary."""
    main_insured: str | None = None
    """A beneficiary's main insured (their name), None for the main insured themselves."""

    @property
    def author(self) -> str:
        return author_of(self.encounter)

    @property
    def doctor_name(self) -> str:
        return name_of(self.doctor) if self.doctor else self.author

    @property
    def doctor_inpe(self) -> str | None:
        return next(
            (
                i["value"]
                for i in self.doctor.get("identifier", [])
                if i.get("system") == INPE_SYSTEM
            ),
            None,
        )

    @property
    def signed_on(self) -> str:
        return str(self.encounter["period"]["start"])

    @property
    def cancelled(self) -> bool:
        return self.encounter.get("status") == "cancelled"

    @property
    def patient_name(self) -> str:
        return name_of(self.patient)

    @property
    def benefit(self) -> Decimal:
        return totals(self.lines).benefit

    @property
    def copay(self) -> Decimal:
        return totals(self.lines).copay

    @property
    def cin(self) -> str | None:
        return _identifier(self.patient, CIN_SYSTEM)


def author_of(encounter: dict[str, Any]) -> str:
    """Who signed the sheet: the reference of its Encounter's first participant."""
    return str(encounter["participant"][0]["individual"]["reference"])


async def load_sheet(fhir: FhirService, number: str) -> SheetView | None:
    """The sheet ``number`` as signed, in three statements: its own resources (found by its
    number), then its insured with their Coverages, its doctor and its claim's answer, then
    the claim's facts (one more for a beneficiary's main insured)."""
    async with fhir.store.snapshot() as conn:
        encounters, claims, medicines, labs = await find_each(
            fhir,
            conn,
            [
                Lookup("Encounter", "identifier", f"{CONSULTATION_SYSTEM}|{number}"),
                Lookup("Claim", "identifier", f"{CARE_SHEET_SYSTEM}|{number}"),
                Lookup("MedicationRequest", "group-identifier", f"{PRESCRIPTION_SYSTEM}|{number}"),
                Lookup("ServiceRequest", "requisition", f"{PRESCRIPTION_SYSTEM}|{number}"),
            ],
        )
        if not encounters:
            return None
        encounter = encounters[0]
        patient_id = encounter["subject"]["reference"].split("/")[-1]
        related = [
            Lookup("Patient", "_id", patient_id),
            Lookup("Coverage", "beneficiary", f"Patient/{patient_id}"),
        ]
        author = author_of(encounter).split("/")
        if author[0] == "Practitioner":
            related.append(Lookup("Practitioner", "_id", author[-1]))
        if claims:
            related.append(Lookup("ClaimResponse", "request", f"Claim/{claims[0]['id']}"))
        found = dict(
            zip((r.rtype for r in related), await find_each(fhir, conn, related), strict=True)
        )
        view = SheetView(number, encounter, found["Patient"][0])
        view.medicines, view.labs = medicines, labs
        if author[0] == "Practitioner":
            view.doctor = next(iter(found["Practitioner"]), {})
        if claims:
            view.claim = claims[0]
            view.response = next(iter(found["ClaimResponse"]), None)
        facts = await claim_facts(conn, [f"{CARE_SHEET_SYSTEM}|{number}"])
        await _insured_numbers(fhir, conn, view, found["Coverage"])
    view.status = status_of(
        facts.get(f"{CARE_SHEET_SYSTEM}|{number}"),
        view.cancelled,
        payment_date_of(view.response),
        hold_reason(view.response),
    )
    if view.claim and view.response:
        view.lines = amount_lines(view.claim, view.response)
    return view


def _identifier(resource: dict[str, Any], system: str) -> str | None:
    return next(
        (i["value"] for i in resource.get("identifier", []) if i.get("system") == system),
        None,
    )


async def _insured_numbers(
    fhir: FhirService, conn: Any, view: SheetView, covers: list[dict[str, Any]]
) -> None:
    """The immatriculation the patient copy prints: a beneficiary has none of their own, so
    their main insured's (the subscriber of one of their ``covers``) is theirs at the CNSS."""
    view.immatriculation = _identifier(view.patient, IMMATRICULATION_SYSTEM)
    if view.immatriculation is not None:
        return
    for cover in covers:
        subscriber = (cover.get("subscriber") or {}).get("reference", "")
        if not subscriber.startswith("Patient/"):
            continue
        found = await search(fhir, conn, "Patient", [("_id", subscriber.split("/")[-1])], count=1)
        if found and (number := _identifier(found[0], IMMATRICULATION_SYSTEM)):
            view.immatriculation, view.main_insured = number, name_of(found[0])
            return


@dataclass(frozen=True)
class SheetRow:
    """One line of "Mes feuilles": when, which sheet, for whom, how much, its status."""

    number: str
    signed_on: str
    patient_name: str
    status: ClaimStatus


async def sheets_of(fhir: FhirService, practitioner: str, count: int = 30) -> list[SheetRow]:
    """The doctor's latest sheets, newest first, each with its patient and its status."""
    async with fhir.store.snapshot() as conn:
        encounters = await search(
            fhir,
            conn,
            "Encounter",
            [
                ("practitioner", practitioner),
                ("_sort", "-date"),
                ("identifier:missing", "false"),
            ],
            count=count,
        )
        names = await fhir.display_names(conn, [e["subject"]["reference"] for e in encounters])
        numbers = [e["identifier"][0]["value"] for e in encounters]
        facts = await claim_facts(conn, [f"{CARE_SHEET_SYSTEM}|{n}" for n in numbers])
    return [
        SheetRow(
            number,
            str(e["period"]["start"]),
            names[e["subject"]["reference"]],
            status_of(facts.get(f"{CARE_SHEET_SYSTEM}|{number}"), e.get("status") == "cancelled"),
        )
        for number, e in zip(numbers, encounters, strict=True)
    ]
