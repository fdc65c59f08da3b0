"""Sign a visit: the care sheet becomes FHIR resources written with the doctor's signed
Provenance and settled by the reimbursement engine, all in one transaction.

Exactly once per reviewed form (``idempotency.py``): posting the same review again answers the
first sheet. A second sheet with the same lines the same day needs the doctor's confirmation
(``duplicates.py``). If the settlement fails, nothing of the sheet is stored.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError

from fhir_profiles.identifiers import care_sheet_number
from fhir_profiles.systems import (
    ACT_SYSTEM,
    CONSULTATION_SYSTEM,
    LAB_SYSTEM,
    PRESCRIPTION_LINE_SYSTEM,
    PRESCRIPTION_SYSTEM,
)
from fhir_profiles.systems import GTIN_SYSTEM as GTIN
from fhir_profiles.systems import NGAP_ACTS_SYSTEM as NGAP_ACTS
from fhir_profiles.systems import NGAP_COEFFICIENT_EXTENSION as COEFFICIENT
from fhir_profiles.systems import NGAP_SYSTEM as NGAP
from fse.audit import change_event
from fse.crypto.provenance import provenance
from fse.crypto.tokens import SigningKey
from fse.errors import Conflict
from fse.fhir_api.interactions import FhirService, under_their_ids
from fse.store.repository import Stored, conditional_lock, new_id
from prescriber.duplicates import DuplicateSheet, lines_hash, same_lines_today
from prescriber.idempotency import ReviewedForm, content_hash, first_sheet, new_key, record
from prescriber.visit import ActLine, Visit
from reimbursement.claims import fhir_money, new_claim
from reimbursement.context import Insured, read_insured
from reimbursement.core.adjudication import Books
from reimbursement.core.model import Exoneration
from reimbursement.settle import Settlement

log = logging.getLogger(__name__)


class SheetRefused(ValueError):
    """The sheet cannot be signed as it is (the message says why, in French)."""


class SettlementFailed(RuntimeError):
    """The engine could not settle the acts (a refusal or an error): the whole sheet was rolled
    back, nothing is stored, and the same review may be signed again."""


@dataclass(frozen=True)
class SignedSheet:
    number: str
    claim_id: str | None = None
    response: dict[str, Any] | None = None
    """The ClaimResponse of the acts (None when the sheet has only prescriptions)."""
    resources: list[str] = field(default_factory=list)
    provenance_id: str | None = None
    replayed: bool = False
    """True when this review form had signed before: the first sheet's number, nothing new
    stored (the other fields are empty)."""


def _cotation(act: ActLine) -> dict[str, Any]:
    """The key letter that prices the line (first) and the NGAP act it names, if any."""
    codings: list[dict[str, Any]] = [{"system": NGAP, "code": act.code}]
    listed = act.ngap_act
    if listed is not None:
        named = {"system": NGAP_ACTS, "code": listed.code}
        codings.append({**named, "display": listed.label} if listed.label else named)
    return {"coding": codings}


def _coefficient(value: Decimal) -> list[dict[str, Any]]:
    """The NGAP coefficient as typed (a Decimal: it leaves exact, e.g. ``1.5``), 1 left out."""
    return [] if value == 1 else [{"url": COEFFICIENT, "valueDecimal": value}]


async def sign_sheet(
    fhir: FhirService,
    settlement: Settlement,
    books: Books,
    practitioner: str,
    key: SigningKey,
    patient_id: str,
    visit: Visit,
    now: datetime,
    form_key: str | None = None,
    duplicate_confirmed: bool = False,
) -> SignedSheet:
    """``form_key`` is the review form's idempotency key (None: a new one, nothing to replay).
    Raises KeyReused (the key signed other content), DuplicateSheet (same lines today, not
    confirmed), SheetRefused or SettlementFailed; on each, nothing is stored."""
    review = ReviewedForm(
        form_key or new_key(),
        content_hash(patient_id, visit),
        lines_hash(visit),
        duplicate_confirmed,
    )
    now = now.astimezone(settlement.schedule.zone)  # times on the sheet in Moroccan time
    attempts = 0
    while True:
        number = care_sheet_number(now.year, secrets.randbelow(10**9))
        try:
            return await _write(
                fhir, settlement, books, key, practitioner, patient_id, visit, now, number, review
            )
        except (Conflict, IntegrityError):
            # This form's key was taken (it signed before, or a concurrent post of the same
            # review did): the first sheet is the answer. Otherwise the number was taken:
            # draw another.
            first = await first_sheet(fhir, practitioner, review.key, review.content)
            if first is not None:
                return SignedSheet(first, replayed=True)
            attempts += 1
            if attempts == 3:
                raise


@dataclass(frozen=True)
class Draft:
    """What a sheet's resources take from the store: the Coverage of today's care, the ALD/ALC
    in force and the prescriptions' validity. Signing and the review's pre-settlement build
    the same resources from it."""

    coverage_id: str | None
    conditions: list[Exoneration]
    validity_days: int
    insured: Insured
    """The reading it was drafted from: the engine settles against the same."""

    @classmethod
    def of(cls, insured: Insured, books: Books, visit: Visit, today: date) -> Draft:
        """Raises SheetRefused when the visit bills acts and the patient has no AMO coverage."""
        coverage_id = insured.coverage_on(books, today)
        if visit.acts and coverage_id is None:
            raise SheetRefused("Aucune couverture AMO connue pour ce patient : feuille impossible.")
        conditions = insured.exonerations_on(today)
        validity = books.rights.prescription_validity_days(today)
        return cls(coverage_id, conditions, validity, insured)

    def resources(
        self, number: str, practitioner: str, patient_id: str, visit: Visit, now: datetime
    ) -> list[dict[str, Any]]:
        """``now`` in the schedule's zone (times on the sheet in Moroccan time)."""
        return _resources(
            number,
            practitioner,
            patient_id,
            self.coverage_id,
            self.conditions,
            visit,
            now,
            now.date(),
            self.validity_days,
        )


async def draft_of(
    fhir: FhirService,
    books: Books,
    patient_id: str,
    visit: Visit,
    today: date,
    insured: Insured | None = None,
) -> Draft:
    """The draft as the store stands now, for a review that writes nothing; ``insured``: as
    the page just read them (not read again)."""
    if insured is None:
        async with fhir.store.snapshot() as conn:
            insured = await read_insured(fhir, conn, patient_id)
    return Draft.of(insured, books, visit, today)


async def _write(
    fhir: FhirService,
    settlement: Settlement,
    books: Books,
    key: SigningKey,
    practitioner: str,
    patient_id: str,
    visit: Visit,
    now: datetime,
    number: str,
    review: ReviewedForm,
) -> SignedSheet:
    """One transaction: the key row first (a replay or a concurrent post of the same form
    stops there; the same statement takes a per doctor and insured lock and the settlement's
    lock on the insured), the duplicate check under them, the insured read once, the
    resources built from them, the signed Provenance, the AuditEvent, then the settlement of
    the same reading, which creates them with its own answers in one round trip."""
    written: list[Stored] = []
    async with fhir.store.transaction() as conn:
        today = now.date()
        encounters = f"practitioner={practitioner}&subject=Patient/{patient_id}"
        locks = (conditional_lock("Encounter", encounters), settlement.lock_name(patient_id))
        await record(conn, review, number, practitioner, patient_id, today, now, locks)
        if not review.duplicate_confirmed:
            earlier = await same_lines_today(
                fhir, conn, practitioner, patient_id, today, review.lines, besides=number
            )
            if earlier:
                raise DuplicateSheet(earlier)
        insured = await read_insured(fhir, conn, patient_id, practitioner)  # one statement
        draft = Draft.of(insured, books, visit, today)
        resources = draft.resources(number, practitioner, patient_id, visit, now)
        signed = provenance(key, practitioner, resources, now)  # storing them changes none
        provenance_id = new_id()
        kinds = ", ".join(sorted({r["resourceType"] for r in resources}))
        audit = change_event(
            practitioner,
            f"feuille {number} rédigée et signée ({kinds})",
            [f"Patient/{patient_id}", f"Provenance/{provenance_id}"],
            "Plateforme FSE - espace médecin",
            now,
            now.tzinfo or UTC,
            action="C",
        )
        items = [
            *under_their_ids(resources),
            ("Provenance", signed, provenance_id),
            ("AuditEvent", audit, None),
        ]
        claim = next((r for r in resources if r["resourceType"] == "Claim"), None)
        response = None
        if claim is None:  # prescriptions only: nothing to settle
            written.extend(await fhir.create_generated_many(conn, items))  # one round trip
        else:
            try:
                response = await settlement.submit_within(
                    conn, dict(claim), written, draft.insured, pending=items, locked=True
                )
            except (Conflict, IntegrityError):  # the number is taken: sign_sheet draws another
                raise
            except Exception as error:  # a refusal (FhirError) or a failure: roll back all
                log.exception("settling care sheet %s failed: nothing of it is stored", number)
                raise SettlementFailed(f"care sheet {number} not settled: {error}") from error
    fhir.announce(written)
    return SignedSheet(
        number,
        claim["id"] if claim else None,
        response,
        [f"{r['resourceType']}/{r['id']}" for r in resources],
        provenance_id,
    )


def _resources(
    number: str,
    practitioner: str,
    patient_id: str,
    coverage_id: str | None,
    conditions: list[Exoneration],
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
            "identifier": [{"system": CONSULTATION_SYSTEM, "value": number}],
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
                "identifier": [{"system": ACT_SYSTEM, "value": f"{number}-A{i}"}],
                "status": "billable",
                "code": _cotation(act),
                "subject": patient,
                "context": encounter,
                "occurrenceDateTime": moment,
                "quantity": {"value": 1},
                "performer": [{"actor": doctor}],
                "priceOverride": fhir_money(act.fee),
            }
        )
        item: dict[str, Any] = {
            "sequence": i,
            "extension": _coefficient(act.coefficient),
            "productOrService": _cotation(act),
            "servicedDate": today.isoformat(),
            "encounter": [encounter],
            "net": fhir_money(act.fee),
        }
        if act.ald and condition:
            item["diagnosisSequence"] = [1]
        items.append({k: v for k, v in item.items() if v != []})
    for i, line in enumerate(visit.medicines, 1):
        request: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": new_id(),
            "identifier": [{"system": PRESCRIPTION_LINE_SYSTEM, "value": f"{number}-M{i}"}],
            "groupIdentifier": {"system": PRESCRIPTION_SYSTEM, "value": number},
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {
                "coding": [
                    {
                        "system": GTIN,
                        "code": line.medicine.ean,
                        "display": line.label or line.medicine.name,
                    }
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
            "identifier": [{"system": LAB_SYSTEM, "value": f"{number}-B{i}"}],
            "requisition": {"system": PRESCRIPTION_SYSTEM, "value": number},
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
