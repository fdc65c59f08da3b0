"""A doctor's care sheets as they were signed: read back from the FHIR store by number."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from fse.fhir_api.interactions import FhirService
from fse.resources import name_of
from reimbursement.amounts import AmountLine, amount_lines
from reimbursement.context import search

SID = "https://fse.cnss.ma/fhir/sid"


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

    @property
    def author(self) -> str:
        return str(self.encounter["participant"][0]["individual"]["reference"])

    @property
    def doctor_name(self) -> str:
        return name_of(self.doctor) if self.doctor else self.author

    @property
    def doctor_inpe(self) -> str | None:
        return next(
            (
                i["value"]
                for i in self.doctor.get("identifier", [])
                if i.get("system") == f"{SID}/inpe"
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
        return sum((line.benefit for line in self.lines), Decimal("0.00"))

    @property
    def copay(self) -> Decimal:
        return sum((line.copay for line in self.lines), Decimal("0.00"))

    @property
    def payment_date(self) -> date | None:
        payment = (self.response or {}).get("payment")
        return date.fromisoformat(payment["date"]) if payment else None

    @property
    def disposition(self) -> str:
        return str((self.response or {}).get("disposition", ""))


async def load_sheet(fhir: FhirService, number: str) -> SheetView | None:
    async with fhir.store.snapshot() as conn:
        encounters = await search(
            fhir, conn, "Encounter", [("identifier", f"{SID}/consultation|{number}")]
        )
        if not encounters:
            return None
        encounter = encounters[0]
        patient_id = encounter["subject"]["reference"].split("/")[-1]
        patient = (await search(fhir, conn, "Patient", [("_id", patient_id)]))[0]
        view = SheetView(number, encounter, patient)
        author = view.author.split("/")
        if author[0] == "Practitioner":
            doctors = await search(fhir, conn, "Practitioner", [("_id", author[-1])])
            view.doctor = doctors[0] if doctors else {}
        claims = await search(fhir, conn, "Claim", [("identifier", f"{SID}/fse|{number}")])
        view.medicines = await search(
            fhir, conn, "MedicationRequest", [("group-identifier", f"{SID}/prescription|{number}")]
        )
        view.labs = await search(
            fhir, conn, "ServiceRequest", [("requisition", f"{SID}/prescription|{number}")]
        )
        if claims:
            view.claim = claims[0]
            responses = await search(
                fhir, conn, "ClaimResponse", [("request", f"Claim/{claims[0]['id']}")]
            )
            view.response = responses[0] if responses else None
    if view.claim and view.response:
        view.lines = amount_lines(view.claim, view.response)
    return view


async def sheets_of(fhir: FhirService, practitioner: str, count: int = 30) -> list[dict[str, Any]]:
    """The doctor's latest sheets (their Encounters), newest first."""
    async with fhir.store.snapshot() as conn:
        return await search(
            fhir,
            conn,
            "Encounter",
            [
                ("practitioner", practitioner),
                ("_sort", "-date"),
                ("_count", str(count)),
                ("identifier:missing", "false"),
            ],
        )
