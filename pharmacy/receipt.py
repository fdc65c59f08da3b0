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
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select

from fse.fhir_api.interactions import FhirService
from pharmacy.pharmacist import Pharmacist
from pharmacy.tables import dispensations
from reimbursement.amounts import AmountLine, amount_lines
from reimbursement.claims import CARE_SHEET_SYSTEM
from reimbursement.context import search
from reimbursement.core.money import ZERO
from reimbursement.ledger import batch_holding


@dataclass(frozen=True)
class ReceiptLine:
    medicine: str
    quantity: Decimal
    substituted: bool
    amounts: AmountLine


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
    disposition: str
    payment_date: date | None
    batch: tuple[str, str] | None
    receipt: dict[str, Any]
    """The receipt signed when the dispense was written."""
    receipt_jws: str
    lines: list[ReceiptLine] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((line.amounts.submitted for line in self.lines), ZERO)

    @property
    def benefit(self) -> Decimal:
        return sum((line.amounts.benefit for line in self.lines), ZERO)

    @property
    def copay(self) -> Decimal:
        return sum((line.amounts.copay for line in self.lines), ZERO)

    @property
    def at_counter(self) -> Decimal:
        """What the insured pays the pharmacy now."""
        return self.copay if self.tiers_payant else self.total


def receipt_payload(
    number: str,
    pharmacist: Pharmacist,
    patient_name: str,
    at: datetime,
    claim: dict[str, Any],
    response: dict[str, Any],
    substituted: list[bool],
    cutoff: datetime | None,
) -> dict[str, Any]:
    """What the platform signs when the dispense is written: who, whom, when, each line's
    money, what the insured pays at the counter, and the payment (the cut-off whose batch
    pays it). Signed once and stored, so a printed receipt stays verifiable after the batch."""
    lines = amount_lines(claim, response)
    tiers_payant = (response.get("payeeType") or {}).get("coding", [{}])[0].get(
        "code"
    ) == "provider"
    total = sum((line.submitted for line in lines), ZERO)
    benefit = sum((line.benefit for line in lines), ZERO)
    copay = sum((line.copay for line in lines), ZERO)
    if response.get("payment") and cutoff is not None:
        payment = f"lot de la coupure du {cutoff:%d/%m/%Y %H:%M}"
    elif response.get("outcome") == "queued":
        payment = "après contrôle CNSS"
    else:
        payment = "aucun"
    return {
        "recu": number,
        "pharmacie": pharmacist.pharmacy_name,
        "pharmacien": pharmacist.name,
        "assure": patient_name,
        "date": at.astimezone(UTC).isoformat(timespec="seconds"),
        "tiers_payant": tiers_payant,
        "lignes": [
            {
                "medicament": item["productOrService"]["coding"][0].get("display", line.code),
                "boites": f"{Decimal(str(item['quantity']['value'])).normalize():f}",
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
    async with fhir.store.snapshot() as conn:
        row = (
            await conn.execute(select(dispensations).where(dispensations.c.number == number))
        ).first()
        if row is None:
            return None
        claim = (await search(fhir, conn, "Claim", [("_id", row.claim_id)]))[0]
        responses = await search(fhir, conn, "ClaimResponse", [("request", f"Claim/{claim['id']}")])
        response = responses[0] if responses else {}
        patient = f"Patient/{row.patient_id}"
        names = await fhir.display_names(conn, [patient, row.pharmacy, row.pharmacist])
        batch = await batch_holding(conn, f"{CARE_SHEET_SYSTEM}|{number}")
        dispenses = [
            (await search(fhir, conn, "MedicationDispense", [("_id", entry.split(":")[0])]))[0]
            for entry in row.lines.split(",")
        ]
    payment = response.get("payment")
    payee = (response.get("payeeType") or {}).get("coding", [{}])[0].get("code")
    view = DispenseView(
        number=number,
        pharmacy=row.pharmacy,
        pharmacy_name=names[row.pharmacy],
        pharmacist_name=names[row.pharmacist],
        patient_id=row.patient_id,
        patient_name=names[patient],
        created_at=row.created_at,
        reversed=row.reversed_at is not None,
        tiers_payant=payee == "provider",
        disposition=str(response.get("disposition", "")),
        payment_date=date.fromisoformat(payment["date"]) if payment else None,
        batch=batch,
        receipt=orjson.loads(row.receipt),
        receipt_jws=row.receipt_jws,
    )
    amounts = {line.sequence: line for line in amount_lines(claim, response)} if response else {}
    for item, dispensed in zip(claim["item"], dispenses, strict=True):
        coding = item["productOrService"]["coding"][0]
        view.lines.append(
            ReceiptLine(
                medicine=coding.get("display", coding["code"]),
                quantity=Decimal(str(item["quantity"]["value"])).normalize(),
                substituted=bool(dispensed["substitution"]["wasSubstituted"]),
                amounts=amounts[item["sequence"]],
            )
        )
    return view


@dataclass(frozen=True)
class DayLine:
    number: str
    at: datetime
    patient_name: str
    reversed: bool


async def todays_dispenses(
    fhir: FhirService, pharmacy: str, zone: Any, limit: int = 50
) -> list[DayLine]:
    """This pharmacy's dispenses of the day, newest first (to find one to reprint or reverse)."""
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
    return [
        DayLine(
            r.number,
            r.created_at.astimezone(zone),
            names[f"Patient/{r.patient_id}"],
            r.reversed_at is not None,
        )
        for r in rows
    ]
