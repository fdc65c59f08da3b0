"""Sign a visit: the care sheet becomes FHIR resources written in one transaction with the
doctor's signed Provenance, then its acts are settled at once by the reimbursement engine."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fhir_profiles.identifiers import care_sheet_number
from fse.audit import change_event
from fse.errors import Conflict
from fse.fhir_api.interactions import FhirService
from fse.security.provenance import provenance
from fse.security.tokens import SigningKey
from fse.store.repository import new_id
from prescriber.visit import Visit
from reimbursement.claims import new_claim
from reimbursement.context import coverage_for_care, exonerations
from reimbursement.core.adjudication import Books
from reimbursement.settle import Settlement

SID = "https://fse.cnss.ma/fhir/sid"
NGAP = "https://fse.cnss.ma/fhir/CodeSystem/ngap"
COEFFICIENT = "https://fse.cnss.ma/fhir/StructureDefinition/ngap-coefficient"
GTIN = "urn:oid:1.3.160"


class SheetRefused(ValueError):
    """The sheet cannot be signed as it is (the message says why, in French)."""


@dataclass(frozen=True)
class SignedSheet:
    number: str
    claim_id: str | None
    response: dict[str, Any] | None
    """The ClaimResponse of the acts (None when the sheet has only prescriptions)."""
    resources: list[str]
    provenance_id: str


def _money(value: Any) -> dict[str, Any]:
    return {"value": float(value), "currency": "MAD"}


def _coefficient(value: Any) -> list[dict[str, Any]]:
    return [] if value == 1 else [{"url": COEFFICIENT, "valueDecimal": float(value)}]


async def sign_sheet(
    fhir: FhirService,
    settlement: Settlement,
    books: Books,
    practitioner: str,
    key: SigningKey,
    patient_id: str,
    visit: Visit,
    now: datetime,
) -> SignedSheet:
    now = now.astimezone(settlement.schedule.zone)  # times on the sheet in Moroccan time
    today = now.date()
    async with fhir.store.snapshot() as conn:
        coverage_id = await coverage_for_care(fhir, conn, books, patient_id, today)
        conditions = [
            e
            for e in await exonerations(fhir, conn, patient_id)
            if e.start <= today and (e.end is None or today <= e.end)
        ]
    if visit.acts and coverage_id is None:
        raise SheetRefused("Aucune couverture AMO connue pour ce patient : feuille impossible.")
    validity = books.rights.prescription_validity_days(today)
    for attempt in range(3):
        number = care_sheet_number(today.year, secrets.randbelow(10**9))
        resources = _resources(
            number, practitioner, patient_id, coverage_id, conditions, visit, now, today, validity
        )
        try:
            signed = await _write(fhir, key, practitioner, resources, now, number, patient_id)
            break
        except Conflict:
            if attempt == 2:
                raise
    claim = next((r for r in resources if r["resourceType"] == "Claim"), None)
    response = (await settlement.submit(dict(claim))).response if claim else None
    return SignedSheet(
        number,
        claim["id"] if claim else None,
        response,
        [f"{r['resourceType']}/{r['id']}" for r in resources],
        signed,
    )


async def _write(
    fhir: FhirService,
    key: SigningKey,
    practitioner: str,
    resources: list[dict[str, Any]],
    now: datetime,
    number: str,
    patient_id: str,
) -> str:
    written = []
    async with fhir.store.transaction() as conn:
        for resource in resources:
            rtype, rid = resource["resourceType"], resource["id"]
            body = {k: v for k, v in resource.items() if k != "id"}
            written.append((await fhir.create(conn, rtype, body, rid=rid)).stored)
        signed = provenance(key, practitioner, resources, now)
        stored = (await fhir.create(conn, "Provenance", signed)).stored
        written.append(stored)
        kinds = ", ".join(sorted({r["resourceType"] for r in resources}))
        audit = change_event(
            practitioner,
            f"feuille {number} rédigée et signée ({kinds})",
            [f"Patient/{patient_id}", f"Provenance/{stored.id}"],
            "Plateforme FSE - espace médecin",
            now,
            now.tzinfo or UTC,
            action="C",
        )
        written.append((await fhir.create(conn, "AuditEvent", audit)).stored)
    fhir.announce(written)
    return stored.id


def _resources(
    number: str,
    practitioner: str,
    patient_id: str,
    coverage_id: str | None,
    conditions: list[Any],
    visit: Visit,
    now: datetime,
    today: date,
    validity_days: int,
) -> list[dict[str, Any]]:
    patient = {"reference": f"Patient/{patient_id}"}
    doctor = {"reference": practitioner}
    moment = now.isoformat(timespec="seconds")
    encounter_id = new_id()
    encounter = {"reference": f"Encounter/{encounter_id}"}
    condition = conditions[0].condition_id if conditions else None
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Encounter",
            "id": encounter_id,
            "identifier": [{"system": f"{SID}/consultation", "value": number}],
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": patient,
            "participant": [{"individual": doctor}],
            "period": {"start": moment, "end": moment},
        }
    ]
    items = []
    for i, act in enumerate(visit.acts, 1):
        resources.append(
            {
                "resourceType": "ChargeItem",
                "id": new_id(),
                "extension": _coefficient(act.coefficient),
                "identifier": [{"system": f"{SID}/acte", "value": f"{number}-A{i}"}],
                "status": "billable",
                "code": {"coding": [{"system": NGAP, "code": act.code}]},
                "subject": patient,
                "context": encounter,
                "occurrenceDateTime": moment,
                "quantity": {"value": 1},
                "performer": [{"actor": doctor}],
                "priceOverride": _money(act.fee),
            }
        )
        item: dict[str, Any] = {
            "sequence": i,
            "extension": _coefficient(act.coefficient),
            "productOrService": {"coding": [{"system": NGAP, "code": act.code}]},
            "servicedDate": today.isoformat(),
            "encounter": [encounter],
            "net": _money(act.fee),
        }
        if act.ald and condition:
            item["diagnosisSequence"] = [1]
        items.append({k: v for k, v in item.items() if v != []})
    for i, line in enumerate(visit.medicines, 1):
        request: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": new_id(),
            "identifier": [{"system": f"{SID}/ligne-prescription", "value": f"{number}-M{i}"}],
            "groupIdentifier": {"system": f"{SID}/prescription", "value": number},
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {
                "coding": [
                    {"system": GTIN, "code": line.medicine.ean, "display": line.medicine.name}
                ]
            },
            "subject": patient,
            "encounter": encounter,
            "authoredOn": moment,
            "requester": doctor,
            "dosageInstruction": [{"text": f"{line.dosage}, pendant {line.days} jours"}],
            "dispenseRequest": {
                "validityPeriod": {
                    "start": today.isoformat(),
                    "end": (today + timedelta(days=validity_days)).isoformat(),
                },
                "quantity": {"value": line.boxes, "unit": "boîte"},
                "expectedSupplyDuration": {
                    "value": line.days,
                    "unit": "jours",
                    "system": "http://unitsofmeasure.org",
                    "code": "d",
                },
            },
            "substitution": {"allowedBoolean": not line.not_substitutable},
        }
        if line.ald and condition:
            request["reasonReference"] = [{"reference": f"Condition/{condition}"}]
        resources.append(request)
    for i, lab in enumerate(visit.labs, 1):
        order: dict[str, Any] = {
            "resourceType": "ServiceRequest",
            "id": new_id(),
            "extension": _coefficient(lab.coefficient),
            "identifier": [{"system": f"{SID}/analyse", "value": f"{number}-B{i}"}],
            "requisition": {"system": f"{SID}/prescription", "value": number},
            "status": "active",
            "intent": "order",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://snomed.info/sct",
                            "code": "108252007",
                            "display": "Laboratory procedure",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": NGAP, "code": "B"}], "text": lab.label},
            "subject": patient,
            "encounter": encounter,
            "authoredOn": moment,
            "requester": doctor,
        }
        if lab.note:
            order["note"] = [{"text": lab.note}]
        if lab.ald and condition:
            order["reasonReference"] = [{"reference": f"Condition/{condition}"}]
        resources.append({k: v for k, v in order.items() if v != []})
    if items:
        assert coverage_id is not None  # refused before when the visit has acts
        claim = new_claim(
            new_id(), number, "professional", patient_id, practitioner, coverage_id, moment, items
        )
        if condition and any(a.ald for a in visit.acts):
            claim["diagnosis"] = [
                {"sequence": 1, "diagnosisReference": {"reference": f"Condition/{condition}"}}
            ]
        resources.append(claim)
    for resource in resources:
        if resource.get("extension") == []:
            del resource["extension"]
    return resources
