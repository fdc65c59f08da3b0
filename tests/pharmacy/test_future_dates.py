"""A dispense stamped later than the platform's clock is refused (FSE-0034) and stores nothing,
whether the dispenses or the settlement (``Settlement.submit_within``) see it first.

The pharmacy screen stamps dispenses with the server's clock (no date is typed), so this guards
the service, not the form.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest

from fse.errors import ErrorCode, Unprocessable
from pharmacy.dispense import DispenseOrder, dispense
from reimbursement.settle import Settlement
from tests.conftest import Platform
from tests.pharmacy.helpers import AT, counter, fatima_sheet, line, order


async def test_a_dispense_handed_over_later_than_now_is_refused(
    platform: Platform, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    zovirax = line(await desk.lines(sheet.number), "ZOVIRAX")
    before = await platform.row_counts()
    monkeypatch.setattr(platform.app.state.fhir, "clock", lambda: AT - timedelta(hours=1))
    with pytest.raises(Unprocessable) as refused:
        await desk.dispense(zovirax.patient_id, order(zovirax, 1))
    assert [(i.code, i.expression) for i in refused.value.issues] == [
        (ErrorCode.DATE_IN_FUTURE, ("MedicationDispense.whenHandedOver",))
    ]
    assert await platform.row_counts() == before


async def test_the_settlement_within_a_dispense_checks_the_claim_too(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    zovirax = line(await desk.lines(sheet.number), "ZOVIRAX")
    before = await platform.row_counts()
    state = platform.app.state
    usual = state.settlement
    early = Settlement(
        usual.fhir, usual.books, usual.schedule, clock=lambda: AT - timedelta(hours=1)
    )
    with pytest.raises(Unprocessable) as refused:
        await dispense(
            state.fhir,
            early,
            desk.pharmacist,
            desk.key,
            DispenseOrder(zovirax.patient_id, (order(zovirax, 1),)),
            uuid.uuid4().hex,
            AT,
            state.signing_key,
        )
    # The claim was created at the counter at 10:30 in Casablanca; the engine's now is 09:30.
    assert [i.expression for i in refused.value.issues] == [("Claim.created",)]
    assert refused.value.status == 422
    assert await platform.row_counts() == before
