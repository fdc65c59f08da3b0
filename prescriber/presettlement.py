"""The review page's pre-settlement: what signing will pay, computed by the settlement itself.

The draft sheet's Claim is built as signing builds it (``sheets.Draft``) and given to
``Settlement.preview``: the same reading of the insured's rights and history and the same engine
as the settlement written on signing, with nothing stored. So the doctor sees, before signing,
each act's base, rate, refund, patient share and the reason a line will be refused, the total,
who is paid and when.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fhir_profiles.identifiers import care_sheet_number
from fse.errors import FhirError
from fse.fhir_api.interactions import FhirService
from prescriber.sheets import SheetRefused, draft_of
from prescriber.visit import Visit
from reimbursement.amounts import AmountLine, amount_lines, totals
from reimbursement.context import Insured
from reimbursement.settle import Settlement
from reimbursement.status import payment_date_of

log = logging.getLogger(__name__)
UNAVAILABLE = (
    "Le calcul du remboursement est momentanément indisponible : la feuille peut être signée, "
    "son règlement s'affichera ensuite."
)
DRAFT_SEQUENCE = 0
"""The draft Claim's number is never stored; any well-formed number does."""


@dataclass(frozen=True)
class Presettlement:
    response: dict[str, Any] = field(default_factory=dict)
    """The ClaimResponse the settlement would answer now."""
    lines: list[AmountLine] = field(default_factory=list)
    error: str = ""
    """Why no pre-settlement could be computed (signing will say the same)."""

    @property
    def outcome(self) -> str:
        return str(self.response.get("outcome", ""))

    @property
    def benefit(self) -> Decimal:
        return totals(self.lines).benefit

    @property
    def copay(self) -> Decimal:
        return totals(self.lines).copay

    @property
    def billed(self) -> Decimal:
        return totals(self.lines).submitted

    @property
    def to_provider(self) -> bool:
        """Tiers payant: the professional is paid, the insured pays only their share."""
        coding = (self.response.get("payeeType") or {}).get("coding") or [{}]
        return coding[0].get("code") == "provider"

    @property
    def payment_date(self) -> date | None:
        return payment_date_of(self.response)

    @property
    def disposition(self) -> str:
        return str(self.response.get("disposition", ""))


async def presettle(
    fhir: FhirService,
    settlement: Settlement,
    practitioner: str,
    patient_id: str,
    visit: Visit,
    now: datetime,
    insured: Insured | None = None,
) -> Presettlement | None:
    """None when the visit bills no act (its prescriptions are settled at the pharmacy).
    ``insured``: as the page just read them, if it did."""
    if not visit.acts:
        return None
    now = now.astimezone(settlement.schedule.zone)
    try:
        draft = await draft_of(fhir, settlement.books, patient_id, visit, now.date(), insured)
    except SheetRefused as refused:
        return Presettlement(error=str(refused))
    number = care_sheet_number(now.year, DRAFT_SEQUENCE)
    resources = draft.resources(number, practitioner, patient_id, visit, now)
    claim = next(r for r in resources if r["resourceType"] == "Claim")
    try:
        response = await settlement.preview(claim, draft.insured)
    except FhirError as refused:
        return Presettlement(error=refused.diagnostics)
    except Exception:  # the review stays usable; signing reports its own failure
        log.exception("pre-settlement of a review failed")
        return Presettlement(error=UNAVAILABLE)
    return Presettlement(response, amount_lines(claim, response))
