"""The one status of a sheet or dispense, from what is stored (pure: no database)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from pharmacy.numbers import claim_number, dispense_number
from reimbursement.status import ClaimFacts, Stage, status_of

M = Decimal


def facts(status: str, review: str | None = None, batch: str | None = None) -> ClaimFacts:
    return ClaimFacts(
        status=status,
        to_provider=True,
        billed=M("9850.00"),
        benefit=M("6895.00") if status in ("approved", "held") else M("0.00"),
        patient_share=M("2955.00"),
        refusals=("Droits fermés à la date des soins",) if status == "rejected" else (),
        review=review,
        review_reason="motif de l'agent" if review else "",
        batch=batch,
        paid_on=date(2026, 12, 2) if batch else None,
    )


@pytest.mark.parametrize(
    ("stored", "cancelled", "stage", "pays", "label"),
    [
        (None, False, Stage.SIGNED, False, "délivrée"),
        (None, True, Stage.CANCELLED, False, "annulée"),
        (facts("approved"), False, Stage.SETTLED, True, "délivrée et réglée"),
        (facts("rejected"), False, Stage.REJECTED, False, "rejetée (Droits fermés"),
        (facts("held"), False, Stage.HELD, False, "retenue pour contrôle"),
        (facts("approved", "release"), False, Stage.RELEASED, True, "libérée après contrôle"),
        (facts("rejected", "reject"), False, Stage.REFUSED, False, "refusée après contrôle"),
        (facts("cancelled"), False, Stage.CANCELLED, False, "annulée"),
        (facts("approved"), True, Stage.CANCELLED, False, "annulée"),
        (facts("approved", batch="CNSS-1"), False, Stage.PAID, True, "payée (lot CNSS-1, 02/12"),
    ],
)
def test_each_stored_state_has_one_status(
    stored: ClaimFacts | None, cancelled: bool, stage: Stage, pays: bool, label: str
) -> None:
    status = status_of(stored, cancelled, date(2026, 12, 3))
    assert status.stage == stage and status.pays == pays
    assert status.label(dispense=True).startswith(label)
    if not pays:  # no amount of CNSS money is promised
        assert "la CNSS paie" not in status.sentence(dispense=True)


def test_a_refused_tiers_payant_says_what_the_insured_now_owes() -> None:
    status = status_of(facts("rejected", "reject"))
    assert status.insured_share == M("9850.00") and status.withheld == M("6895.00")
    assert "6\u202f895,00\u00a0MAD" in status.owed(dispense=True)


def test_dispense_numbers_never_look_like_care_sheet_numbers() -> None:
    number = dispense_number(2026, 123)
    assert number.startswith("DEL-2026-000000123-") and len(number) == 21
    assert claim_number(number).startswith("FSE-2026-000000123-")
    older = claim_number(number)  # a dispense numbered before DEL-: its own claim number
    assert claim_number(older) == older
