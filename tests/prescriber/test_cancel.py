"""Cancelling a sheet: allowed until a line is dispensed or the benefit leaves in a batch."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from pharmacy.reversal import reverse_dispense
from prescriber.cancel import cancel_sheet
from prescriber.history import load_sheet
from prescriber.sheets import SheetRefused
from reimbursement.feature import schedule_of
from reimbursement.ledger import check_ledger
from reimbursement.payments import Payments
from tests.conftest import Platform
from tests.pharmacy.helpers import AT, counter, order
from tests.prescriber.test_sheets import FULL_VISIT, sign_as_benali, visit_of
from tests.reimbursement.demo import DR_BENALI, FATIMA, load_demo


@pytest.fixture
async def signed(platform: Platform, client: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    refs = await load_demo(client)
    sheet = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT))
    return refs, sheet


async def test_a_cancelled_sheet_is_marked_everywhere_and_its_benefit_reversed(
    platform: Platform,
    client: httpx.AsyncClient,
    signed,  # type: ignore[no-untyped-def]
) -> None:
    refs, sheet = signed
    fhir = platform.app.state.fhir
    view = await load_sheet(fhir, sheet.number)
    assert view is not None
    await cancel_sheet(fhir, view, refs[DR_BENALI], datetime.now(UTC))
    statuses = {
        ref.split("/")[0]: (await client.get(f"/fhir/{ref}")).json()["status"]
        for ref in sheet.resources
    }
    assert statuses == {
        "Encounter": "cancelled",
        "ChargeItem": "aborted",
        "MedicationRequest": "cancelled",
        "ServiceRequest": "revoked",
        "Claim": "cancelled",
    }
    report = await check_ledger(platform.engine)
    assert report.ok, report.problems
    assert report.settlements_owed == 0
    settings = platform.settings
    assert await Payments(fhir, settings, schedule_of(settings).zone).run() == []
    audit = (await client.get("/fhir/AuditEvent", params={"action": "U"})).json()
    assert any("annulée" in e["resource"].get("outcomeDesc", "") for e in audit["entry"])


async def test_a_cancelled_sheet_can_be_written_again_the_same_day(
    platform: Platform,
    signed,  # type: ignore[no-untyped-def]
) -> None:
    """The doctor corrects a mistake: cancel, then sign the visit again. The consultation of
    the cancelled sheet is not a duplicate (R06) of the new one."""
    refs, sheet = signed
    fhir = platform.app.state.fhir
    view = await load_sheet(fhir, sheet.number)
    assert view is not None and sheet.response is not None
    await cancel_sheet(fhir, view, refs[DR_BENALI], datetime.now(UTC))
    again = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT))
    assert again.response is not None
    assert again.response["outcome"] == "complete"
    benefit = again.response["item"][0]["adjudication"][3]
    assert benefit["amount"]["value"] == 56.0 and "reason" not in benefit
    assert (await check_ledger(platform.engine)).ok


async def test_a_dispensed_line_forbids_cancelling(
    platform: Platform,
    client: httpx.AsyncClient,
    signed,  # type: ignore[no-untyped-def]
) -> None:
    refs, sheet = signed
    fhir = platform.app.state.fhir
    desk = await counter(platform, refs)
    first = (await desk.lines(sheet.number))[0]
    stale = await load_sheet(fhir, sheet.number)  # the doctor's page, opened before
    done = await desk.dispense(first.patient_id, order(first, 1, price="209.00"))
    view = await load_sheet(fhir, sheet.number)
    assert view is not None and stale is not None
    with pytest.raises(SheetRefused, match="déjà été délivrée"):
        await cancel_sheet(fhir, view, refs[DR_BENALI], datetime.now(UTC))
    assert (await client.get(f"/fhir/{sheet.resources[0]}")).json()["status"] == "finished"
    # The pharmacy reverses its dispense (an error at the counter): the sheet may go, but not
    # from a page that still shows the prescriptions as they were before the pharmacy.
    zone = platform.app.state.settlement.schedule.zone
    await reverse_dispense(fhir, desk.pharmacist, done.number, AT, zone)
    with pytest.raises(SheetRefused, match="vient de changer"):
        await cancel_sheet(fhir, stale, refs[DR_BENALI], datetime.now(UTC))
    fresh = await load_sheet(fhir, sheet.number)
    assert fresh is not None
    await cancel_sheet(fhir, fresh, refs[DR_BENALI], datetime.now(UTC))
    assert (await client.get(f"/fhir/{sheet.resources[0]}")).json()["status"] == "cancelled"
    assert (await check_ledger(platform.engine)).ok


async def test_a_paid_benefit_forbids_cancelling(
    platform: Platform,
    signed,  # type: ignore[no-untyped-def]
) -> None:
    refs, sheet = signed
    settings = platform.settings
    fhir = platform.app.state.fhir
    assert await Payments(fhir, settings, schedule_of(settings).zone).run()
    view = await load_sheet(fhir, sheet.number)
    assert view is not None
    with pytest.raises(SheetRefused, match="lot de paiement"):
        await cancel_sheet(fhir, view, refs[DR_BENALI], datetime.now(UTC))
    assert (await check_ledger(platform.engine)).ok
