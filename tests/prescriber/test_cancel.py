"""Cancelling a sheet: allowed until a line is dispensed or the benefit leaves in a batch."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from prescriber.cancel import cancel_sheet
from prescriber.history import load_sheet
from prescriber.sheets import SheetRefused
from reimbursement.feature import schedule_of
from reimbursement.ledger import check_ledger
from reimbursement.payments import Payments
from tests.conftest import Platform
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


async def test_a_dispensed_line_forbids_cancelling(
    platform: Platform,
    client: httpx.AsyncClient,
    signed,  # type: ignore[no-untyped-def]
) -> None:
    refs, sheet = signed
    request = next(r for r in sheet.resources if r.startswith("MedicationRequest/"))
    dispense = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": "urn:oid:1.3.160", "code": "6118001701407"}]
        },
        "subject": {"reference": refs[FATIMA]},
        "authorizingPrescription": [{"reference": request}],
        "quantity": {"value": 1},
        "whenHandedOver": "2026-11-22T11:00:00+01:00",
        "performer": [{"actor": {"reference": refs["0012"]}}],
    }
    created = await client.post("/fhir/MedicationDispense", json=dispense)
    assert created.status_code == 201, created.text
    view = await load_sheet(platform.app.state.fhir, sheet.number)
    assert view is not None
    with pytest.raises(SheetRefused, match="déjà été délivrée"):
        await cancel_sheet(platform.app.state.fhir, view, refs[DR_BENALI], datetime.now(UTC))
    assert (await client.get(f"/fhir/{sheet.resources[0]}")).json()["status"] == "finished"


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
