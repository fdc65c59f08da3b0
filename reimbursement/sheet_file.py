"""A care sheet as a CNSS agent opens it to decide: its lines and what the engine proposed, the
prescriber and the pharmacy, the insured's rights and ALD/ALC on the date of care, why it was
held and who it is held on, and the insured's recent sheets. Read only, from one snapshot."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.systems import CARE_SHEET_SYSTEM, IMMATRICULATION_SYSTEM, INPE_SYSTEM
from fse import fhir_json
from fse.errors import NotFound
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.reading import ALL, search
from fse.resources import name_of
from fse.web.formats import date_fr, mad
from reimbursement.context import beneficiary_of, coverage_periods, exonerations
from reimbursement.core.adjudication import Books
from reimbursement.core.anomalies import rule_name
from reimbursement.core.model import CodeKind, Exoneration, Rights
from reimbursement.core.money import ZERO
from reimbursement.core.reasons import Reason
from reimbursement.core.rights import rights_on
from reimbursement.ledger import batch_holding
from reimbursement.responses import REASON_LABELS
from reimbursement.status import ClaimFacts, status_of
from reimbursement.tables import claim_reviews, settlement_holds, settlement_lines, settlements

RECENT = 10
"""How many of the insured's latest sheets the agent sees beside the one they decide on."""

REGIME_LABELS = {
    "salaries": "AMO salariés",
    "tns": "AMO travailleurs non salariés",
    "tadamon": "AMO Tadamon",
    "achamil": "AMO Achamil",
    "public": "Secteur public",
}


def regime_label(regime: str | None) -> str:
    return REGIME_LABELS.get(regime or "", regime or "régime non déterminé")


def status_label(status: str, decision: str | None = None, batch: str | None = None) -> str:
    """A settlement's status in the words of every other screen (``reimbursement.status``)."""
    facts = ClaimFacts(status, False, ZERO, ZERO, ZERO, review=decision, batch=batch)
    return status_of(facts).label()


def settlement_key(number: str) -> str:
    return f"{CARE_SHEET_SYSTEM}|{number}"


def number_of(claim_key: str) -> str:
    return claim_key.rsplit("|", 1)[-1]


_NOTE = re.compile(r"^R13 (?P<rule>\S+) : .*?(?:\((?P<evidence>[^()]*)\))?$")
_MONEY = re.compile(r"^\d+\.\d{2}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EVIDENCE_LABELS = {"ean": "EAN", "ppv": "PPV"}


def evidence_of(notes: list[str]) -> dict[str, list[str]]:
    """Per rule, what it measured (from the ClaimResponse's R13 notes), in French formats."""
    found: dict[str, list[str]] = {}
    for note in notes:
        match = _NOTE.match(note)
        if match is None:
            continue
        shown = []
        for pair in (match["evidence"] or "").split(", "):
            key, _, value = pair.partition(" = ")
            if not value:
                continue
            if _MONEY.match(value) and key != "moyenne_des_pairs":
                value = mad(value)
            elif _DAY.match(value):
                value = date_fr(value)
            shown.append(f"{EVIDENCE_LABELS.get(key, key.replace('_', ' '))} : {value}")
        found[match["rule"]] = shown
    return found


@dataclass(frozen=True)
class SheetLine:
    sequence: int
    code: str
    label: str
    quantity: Decimal
    coefficient: Decimal
    billed: Decimal
    base: Decimal
    benefit: Decimal
    refusal: str | None
    """Why the engine refused the line (None: accepted)."""


@dataclass(frozen=True)
class Professional:
    reference: str
    name: str
    inpe: str | None
    specialties: tuple[str, ...]
    city: str | None = None


@dataclass(frozen=True)
class HoldOn:
    rule: str
    name: str
    professional: str
    evidence: list[str]


@dataclass(frozen=True)
class RecentSheet:
    number: str
    care_date: date
    provider: str
    status: str
    billed: Decimal
    benefit: Decimal | None
    """What is or will be paid; None when nothing is (rejected, cancelled)."""
    current: bool


@dataclass(frozen=True)
class SheetFile:
    number: str
    response_id: str
    status: str
    status_label: str
    dispense: bool
    care_date: date
    received_at: datetime
    billed: Decimal
    benefit: Decimal
    patient_share: Decimal
    payee: str
    patient_id: str
    patient: str
    birth_date: date | None
    immatriculation: str | None
    regime: str
    rights: Rights
    exonerations: list[tuple[Exoneration, bool]]
    """Each recognised ALD/ALC, and whether it was in force on the date of care."""
    lines: list[SheetLine]
    provider: Professional
    prescribers: list[Professional]
    holds: list[HoldOn]
    review: tuple[str, str, str, datetime] | None
    """(decision, reason, reviewer, when) once an agent decided."""
    batch: str | None
    recent: list[RecentSheet]


def _identifier(resource: dict[str, Any] | None, system: str) -> str | None:
    for identifier in (resource or {}).get("identifier", []) or []:
        if identifier.get("system") == system and identifier.get("value"):
            return str(identifier["value"])
    return None


async def _resource(fhir: FhirService, conn: AsyncConnection, ref: str) -> dict[str, Any] | None:
    rtype, _, rid = ref.partition("/")
    try:
        stored = await fhir.store.read(conn, rtype, rid)
    except NotFound:
        return None
    return fhir_json.loads(stored.content) if stored.content else None


async def professional(fhir: FhirService, conn: AsyncConnection, ref: str) -> Professional:
    """Name, INPE and specialities of a Practitioner, PractitionerRole or Organization."""
    resource = await _resource(fhir, conn, ref)
    if resource is None:
        return Professional(ref, ref, None, ())
    roles: list[dict[str, Any]] = []
    if resource["resourceType"] == "PractitionerRole":
        roles = [resource]
        person = (resource.get("practitioner") or {}).get("reference")
        resource = (await _resource(fhir, conn, person) if person else None) or resource
    elif resource["resourceType"] == "Practitioner":
        roles = await search(fhir, conn, "PractitionerRole", [("practitioner", ref)], count=ALL)
    specialties = tuple(
        dict.fromkeys(
            c.get("display") or c.get("code")
            for role in roles
            for s in role.get("specialty", []) or []
            for c in s.get("coding", []) or []
            if c.get("display") or c.get("code")
        )
    )
    city = next((a.get("city") for a in resource.get("address", []) or [] if a.get("city")), None)
    return Professional(
        ref, name_of(resource), _identifier(resource, INPE_SYSTEM), specialties, city
    )


def _labels(claim: dict[str, Any] | None) -> dict[int, str]:
    labels = {}
    for item in (claim or {}).get("item", []) or []:
        coding = next(iter((item.get("productOrService") or {}).get("coding", []) or []), {})
        if coding.get("display"):
            labels[int(item.get("sequence", 0))] = str(coding["display"])
    return labels


def _refusal(code: str) -> str:
    try:
        return f"{REASON_LABELS[Reason(code)]} ({code})"
    except (ValueError, KeyError):
        return code


def _label(kind: str, code: str, coefficient: Decimal, given: str | None) -> str:
    if given:
        return given
    if kind == CodeKind.NGAP.value:
        return f"Acte {code}" + (f" × {coefficient.normalize()}" if coefficient != 1 else "")
    if kind == CodeKind.FLAT_RATE.value:
        return f"Forfait {code}"
    return code


async def sheet_file(
    fhir: FhirService, books: Books, conn: AsyncConnection, number: str
) -> SheetFile | None:
    s = settlements.c
    row = (
        await conn.execute(select(settlements).where(s.claim_key == settlement_key(number)))
    ).first()
    if row is None:
        return None
    ln, h, r = settlement_lines.c, settlement_holds.c, claim_reviews.c
    lines = (
        await conn.execute(
            select(settlement_lines).where(ln.settlement_pk == row.pk).order_by(ln.sequence)
        )
    ).all()
    claim = await _resource(fhir, conn, f"Claim/{row.claim_id}")
    labels = _labels(claim)
    medicines = books.medicines
    shown = []
    for line in lines:
        given = labels.get(line.sequence)
        if given is None and line.kind == CodeKind.MEDICINE.value:
            product = medicines.get(line.code, line.care_date)
            given = product.name if product else None
        reason = _refusal(line.reason) if line.reason else None
        shown.append(
            SheetLine(
                line.sequence,
                line.code,
                _label(line.kind, line.code, Decimal(line.coefficient), given),
                Decimal(line.quantity),
                Decimal(line.coefficient),
                line.billed,
                line.eligible,
                line.benefit,
                reason,
            )
        )
    requests = sorted({line.request_id for line in lines if line.request_id})
    prescriber_refs: list[str] = []
    for request_id in requests:
        request = await _resource(fhir, conn, f"MedicationRequest/{request_id}")
        ref = ((request or {}).get("requester") or {}).get("reference")
        if ref and ref not in prescriber_refs:
            prescriber_refs.append(ref)
    provider = await professional(fhir, conn, row.provider_ref)
    prescribers = [await professional(fhir, conn, ref) for ref in prescriber_refs]

    patient = await _resource(fhir, conn, f"Patient/{row.patient_id}") or {
        "resourceType": "Patient",
        "id": row.patient_id,
    }
    periods, subscribers = await coverage_periods(fhir, conn, patient)
    beneficiary = beneficiary_of(patient)
    rights = rights_on(beneficiary, periods, row.care_date, books.rights)
    main = subscribers.get(rights.coverage_id or "")
    found = await exonerations(fhir, conn, row.patient_id)
    in_force = [(e, e.in_force(row.care_date)) for e in found]

    response = await _resource(fhir, conn, f"ClaimResponse/{row.response_id}") or {}
    evidence = evidence_of([n.get("text", "") for n in response.get("processNote", []) or []])
    held_on = (
        await conn.execute(
            select(h.rule, h.professional_ref).where(h.settlement_pk == row.pk).order_by(h.pk)
        )
    ).all()
    names = await fhir.display_names(conn, [p for _, p in held_on])
    holds = [
        HoldOn(rule, rule_name(rule), names[ref], evidence.get(rule, [])) for rule, ref in held_on
    ]
    reviewed = (
        await conn.execute(
            select(r.decision, r.reason, r.reviewer, r.decided_at).where(r.settlement_pk == row.pk)
        )
    ).first()
    review = (
        (
            "libérée" if reviewed.decision == "release" else "refusée",
            reviewed.reason,
            reviewed.reviewer.removeprefix("user:"),
            reviewed.decided_at,
        )
        if reviewed
        else None
    )
    held = await batch_holding(conn, row.claim_key)
    batch = held[0] if held else None
    return SheetFile(
        number=number,
        response_id=row.response_id,
        status=row.status,
        status_label=status_label(row.status, reviewed.decision if reviewed else None, batch),
        dispense=bool(requests),
        care_date=row.care_date,
        received_at=row.received_at,
        billed=row.billed,
        benefit=row.benefit,
        patient_share=row.patient_share,
        payee=row.payee_name,
        patient_id=row.patient_id,
        patient=name_of(patient),
        birth_date=beneficiary.birth_date,
        immatriculation=_identifier(patient, IMMATRICULATION_SYSTEM)
        or _identifier(main, IMMATRICULATION_SYSTEM),
        regime=regime_label(rights.regime or row.regime),
        rights=rights,
        exonerations=in_force,
        lines=shown,
        provider=provider,
        prescribers=prescribers,
        holds=holds,
        review=review,
        batch=batch,
        recent=await recent_sheets(fhir, conn, row.patient_id, number),
    )


async def recent_sheets(
    fhir: FhirService, conn: AsyncConnection, patient_id: str, current: str
) -> list[RecentSheet]:
    """The insured's latest sheets (this one included), newest care first."""
    s, r = settlements.c, claim_reviews.c
    rows = (
        await conn.execute(
            select(
                s.claim_key, s.care_date, s.provider_ref, s.status, s.billed, s.benefit, r.decision
            )
            .select_from(settlements.outerjoin(claim_reviews, r.settlement_pk == s.pk))
            .where(s.patient_id == patient_id)
            .order_by(s.care_date.desc(), s.received_at.desc())
            .limit(RECENT)
        )
    ).all()
    names = await fhir.display_names(conn, {row.provider_ref for row in rows})
    recent = []
    for row in rows:
        held = await batch_holding(conn, row.claim_key) if row.status == "approved" else None
        number = number_of(row.claim_key)
        recent.append(
            RecentSheet(
                number=number,
                care_date=row.care_date,
                provider=names[row.provider_ref],
                status=status_label(row.status, row.decision, held[0] if held else None),
                billed=row.billed,
                benefit=row.benefit if row.status in ("approved", "held") else None,
                current=number == current,
            )
        )
    return recent
