"""What a dispense will pay, shown before "Délivrer": the settlement's own preview.

The pharmacy Claim is drafted as the dispense writes it (``dispense.draft_claim``: same checks,
read-only) and given to ``Settlement.preview``: the same reading of rights, prescriptions and
history and the same engine as the settlement written on dispensing, with nothing stored. Per
line: price, base, rate, CNSS share, insured share, and the lines the engine would hold for a
CNSS control, on which nothing is paid before the decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fse.fhir_api.interactions import FhirService
from pharmacy.dispense import HELD, DispenseOrder, DraftLine, draft_claim
from pharmacy.pharmacist import Pharmacist
from reimbursement.amounts import AmountLine, amount_lines, totals
from reimbursement.settle import Settlement
from reimbursement.status import payment_date_of


@dataclass(frozen=True)
class PreviewLine:
    request_id: str
    medicine: str
    quantity: Decimal
    substituted: bool
    amounts: AmountLine

    @property
    def held(self) -> bool:
        """The engine holds this line for a CNSS control: nothing is paid before the decision."""
        return self.amounts.reason == HELD


@dataclass(frozen=True)
class DispensePreview:
    patient_id: str
    fingerprint: str
    """The order previewed (``DispenseOrder.fingerprint``): "Délivrer" on this very order has
    been warned."""
    tiers_payant: bool
    response: dict[str, Any]
    lines: list[PreviewLine] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return any(line.held for line in self.lines)

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
    def at_counter(self) -> Decimal:
        """What the insured pays the pharmacy now: their share under tiers payant, else all."""
        return self.copay if self.tiers_payant else self.total

    @property
    def payment_date(self) -> date | None:
        return None if self.held else payment_date_of(self.response)


async def preview_dispense(
    fhir: FhirService,
    settlement: Settlement,
    pharmacist: Pharmacist,
    order: DispenseOrder,
    now: datetime,
) -> DispensePreview:
    """Raises DispenseRefused (or a FhirError of the settlement) as dispensing would."""
    claim, drafted, insured = await draft_claim(fhir, settlement, pharmacist, order, now)
    return preview_of(order, claim, drafted, await settlement.preview(claim, insured))


def preview_of(
    order: DispenseOrder,
    claim: dict[str, Any],
    drafted: list[DraftLine],
    response: dict[str, Any],
) -> DispensePreview:
    """What ``response`` pays for ``claim``, line by line as the pharmacist ordered them."""
    lines = [
        PreviewLine(d.line.request_id, d.label, d.line.quantity, d.substituted, amounts)
        for d, amounts in zip(drafted, amount_lines(claim, response), strict=True)
    ]
    return DispensePreview(
        order.patient_id, order.fingerprint(), order.tiers_payant, response, lines
    )
