"""A dispense as the pharmacist and the insured see it, and its receipt signed by the platform.

Per line: the product handed over, the boxes, the price charged, the reimbursement base (PBR),
the rate, what CNSS pays and what the insured keeps. Under tiers payant the insured pays only
their share at the counter; otherwise they pay the whole price and CNSS reimburses them. The
receipt carries those amounts and the payment batch (or the cut-off it will leave at), signed
with the platform's key (ES256, detached JWS over the canonical JSON; the public key is at
``/.well-known/jwks.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select

from fhir_profiles.systems import CARE_SHEET_SYSTEM, INPE_SYSTEM
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.reading import Lookup, find_each
from fse.fhir_json import decimal_of
from fse.resources import name_of
from pharmacy.numbers import claim_number
from pharmacy.pharmacist import Pharmacist
from pharmacy.tables import dispensations, prescription_balances
from reimbursement.amounts import AmountLine, amount_lines, totals
from reimbursement.status import (
    ClaimStatus,
    Stage,
    claim_facts,
    hold_reason,
    payment_date_of,
    status_of,
)


@dataclass(frozen=True)
class ReceiptLine:
    medicine: str
    quantity: Decimal
    substituted: bool
    amounts: AmountLine
    remaining: Decimal | None = None
    """Boxes of the prescription line still to dispense, now."""


@dataclass
class DispenseView:
    number: str
    pharmacy: str
    pharmacy_name: str
    pharmacist_name: str
    patient_id: str
    patient_name: str
    created_at: datetime
    reversed: bool
    tiers_payant: bool
    status: ClaimStatus
    """The dispense's one status (``reimbursement.status``): what its pages say of money."""
    receipt: dict[str, Any]
    """The receipt signed when the dispense was written."""
    receipt_jws: str
    lines: list[ReceiptLine] = field(default_factory=list)
    sheets: list[str] = field(default_factory=list)
    """The doctor's care sheets whose lines were dispensed."""
    pharmacy_inpe: str | None = None
    pharmacy_city: str | None = None

    @property
    def total(self) -> Decimal:
        return totals(line.amounts for line in self.lines).submitted

    @property
    def benefit(self) -> Decimal:
        return totals(line.amounts for line in self.lines).benefit

    @property
    def copay(self) -> Decimal:
        return totals(line.amounts for line in self.lines).copay

    @property
    def at_counter(self) -> Decimal | None:
        """What the insured owes the pharmacy now: their share under tiers payant while CNSS
        pays or may still pay the rest, else the whole price; nothing once reversed."""
        if self.status.stage == Stage.CANCELLED:
            return None
        if self.tiers_payant and not self.status.nothing_reimbursed:
            return self.copay
        return self.total


def receipt_payload(
    number: str,
    pharmacist: Pharmacist,
    patient_name: str,
    at: datetime,
    claim: dict[str, Any],
    response: dict[str, Any],
    substituted: list[bool],
    cutoff: datetime | None,
    sheets: list[str] | None = None,
) -> dict[str, Any]:
    """What the platform signs when the dispense is written: who, whom, when, each line's
    money, what the insured pays at the counter, and the payment (the cut-off whose batch
    pays it). Signed once and stored, so a printed receipt stays verifiable after the batch."""
    lines = amount_lines(claim, response)
    tiers_payant = (response.get("payeeType") or {}).get("coding", [{}])[0].get(
        "code"
    ) == "provider"
    summed = totals(lines)
    total, benefit, copay = summed.submitted, summed.benefit, summed.copay
    if response.get("payment") and cutoff is not None:
        payment = f"lot de la coupure du {cutoff:%d/%m/%Y %H:%M}"
    elif response.get("outcome") == "queued":
        payment = "après contrôle CNSS"
    else:
        payment = "aucun"
    return {
        "recu": number,
        "feuilles": sheets or [],
        "pharmacie": pharmacist.pharmacy_name,
        "pharmacien": pharmacist.name,
        "assure": patient_name,
        "date": at.astimezone(UTC).isoformat(timespec="seconds"),
        "tiers_payant": tiers_payant,
        "lignes": [
            {
                "medicament": item["productOrService"]["coding"][0].get("display", line.code),
                "boites": f"{decimal_of(item['quantity']['value']).normalize():f}",
                "generique_substitue": swapped,
                "prix": str(line.submitted),
                "base": str(line.eligible),
                "taux": str(line.rate),
                "cnss": str(line.benefit),
                "assure": str(line.copay),
            }
            for item, line, swapped in zip(claim["item"], lines, substituted, strict=True)
        ],
        "paye_au_comptoir": str(copay if tiers_payant else total),
        "rembourse_par_cnss": str(benefit),
        "paiement": payment,
    }


async def load_dispense(fhir: FhirService, number: str) -> DispenseView | None:
    key = f"{CARE_SHEET_SYSTEM}|{claim_number(number)}"
    async with fhir.store.snapshot() as conn:
        row = (
            await conn.execute(select(dispensations).where(dispensations.c.number == number))
        ).first()
        if row is None:
            return None
        entries = [entry.split(":") for entry in row.lines.split(",")]
        patient = f"Patient/{row.patient_id}"
        # Everything the page shows of the store in one round trip (ids from the row).
        claims, responses, pharmacy, *people_and_lines = await find_each(
            fhir,
            conn,
            [
                Lookup("Claim", "_id", row.claim_id),
                Lookup("ClaimResponse", "request", f"Claim/{row.claim_id}"),
                Lookup("Organization", "_id", row.pharmacy.split("/")[-1]),
                Lookup("Patient", "_id", row.patient_id),
                Lookup("Practitioner", "_id", row.pharmacist.split("/")[-1]),
                *(Lookup("MedicationDispense", "_id", entry[0]) for entry in entries),
                *(Lookup("MedicationRequest", "_id", entry[1]) for entry in entries),
            ],
        )
        claim = claims[0]
        response = responses[0] if responses else {}
        people, found = people_and_lines[:2], people_and_lines[2:]
        names = {
            ref: name_of(match[0]) if match else ref
            for ref, match in zip((patient, row.pharmacist), people, strict=True)
        }
        dispenses = [match[0] for match in found[: len(entries)]]
        requests = found[len(entries) :]
        facts = await claim_facts(conn, [key])
        left = await _remaining(conn, [entry[1] for entry in entries])
    payee = (response.get("payeeType") or {}).get("coding", [{}])[0].get("code")
    organization = pharmacy[0] if pharmacy else {}
    view = DispenseView(
        number=number,
        pharmacy=row.pharmacy,
        pharmacy_name=str(organization.get("name", row.pharmacy)),
        pharmacist_name=names[row.pharmacist],
        patient_id=row.patient_id,
        patient_name=names[patient],
        created_at=row.created_at,
        reversed=row.reversed_at is not None,
        tiers_payant=payee == "provider",
        status=status_of(
            facts.get(key),
            row.reversed_at is not None,
            payment_date_of(response),
            hold_reason(response),
        ),
        receipt=orjson.loads(row.receipt),
        receipt_jws=row.receipt_jws,
        sheets=sorted(
            {
                str(found[0]["groupIdentifier"]["value"])
                for found in requests
                if found and found[0].get("groupIdentifier", {}).get("value")
            }
        ),
        pharmacy_inpe=next(
            (
                i.get("value")
                for i in organization.get("identifier", [])
                if i.get("system") == INPE_SYSTEM
            ),
            None,
        ),
        pharmacy_city=next(
            (a.get("city") for a in organization.get("address", []) if a.get("city")), None
        ),
    )
    amounts = {line.sequence: line for line in amount_lines(claim, response)} if response else {}
    for item, dispensed, entry in zip(claim["item"], dispenses, entries, strict=True):
        coding = item["productOrService"]["coding"][0]
        view.lines.append(
            ReceiptLine(
                medicine=coding.get("display", coding["code"]),
                quantity=decimal_of(item["quantity"]["value"]).normalize(),
                substituted=bool(dispensed["substitution"]["wasSubstituted"]),
                amounts=amounts[item["sequence"]],
                remaining=left.get(entry[1]),
            )
        )
    return view


async def _remaining(conn: Any, request_ids: list[str]) -> dict[str, Decimal]:
    """Boxes left to dispense on each prescription line (prescribed less dispensed), now."""
    b = prescription_balances.c
    rows = await conn.execute(
        select(b.request_id, b.prescribed, b.dispensed).where(b.request_id.in_(request_ids))
    )
    return {r.request_id: (Decimal(r.prescribed) - Decimal(r.dispensed)).normalize() for r in rows}


@dataclass(frozen=True)
class DayLine:
    number: str
    at: datetime
    patient_name: str
    reversed: bool
    status: ClaimStatus


async def todays_dispenses(
    fhir: FhirService, pharmacy: str, zone: Any, limit: int = 50
) -> list[DayLine]:
    """This pharmacy's dispenses of the day, newest first (to find one to reprint or reverse),
    each with its status: a held or refused claim is not plainly "délivrée"."""
    start = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    d = dispensations.c
    async with fhir.store.snapshot() as conn:
        rows = (
            await conn.execute(
                select(d.number, d.created_at, d.patient_id, d.reversed_at)
                .where(d.pharmacy == pharmacy, d.created_at >= start)
                .order_by(d.created_at.desc())
                .limit(limit)
            )
        ).all()
        names = await fhir.display_names(conn, [f"Patient/{r.patient_id}" for r in rows])
        keys = {r.number: f"{CARE_SHEET_SYSTEM}|{claim_number(r.number)}" for r in rows}
        facts = await claim_facts(conn, keys.values())
    return [
        DayLine(
            r.number,
            r.created_at.astimezone(zone),
            names[f"Patient/{r.patient_id}"],
            r.reversed_at is not None,
            status_of(facts.get(keys[r.number]), r.reversed_at is not None),
        )
        for r in rows
    ]
