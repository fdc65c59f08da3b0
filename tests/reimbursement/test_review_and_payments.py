"""Held claims wait for an agent; approved benefits leave in a payment batch, exactly once."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from fse.resources import validation_issues
from fse.security.access import role_scopes
from fse.security.users import Role
from reimbursement.feature import schedule_of
from reimbursement.ledger import check_ledger
from reimbursement.payments import Payments
from reimbursement.tables import ledger_entries, payment_batches, settlements
from tests.conftest import Platform
from tests.reimbursement.demo import (
    FATIMA,
    PHARMACY,
    act,
    adjudication,
    claim,
    load_demo,
    medicine,
)

SUBMIT = "/fhir/Claim/$submit"
HERCEPTIN = "6118001050116"  # PPV 6,890.00: above the costly-medicine threshold (2,000)
ZOVIRAX = "6118001141531"
PAIN = "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.03}"


async def prescribe(
    client: httpx.AsyncClient,
    refs: dict[str, str],
    ean: str,
    boxes: int,
    patient: str = FATIMA,
    prescriber: str = "0011",
) -> str:
    request = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "urn:oid:1.3.160", "code": ean}]},
        "subject": {"reference": refs[patient]},
        "authoredOn": "2026-11-20T09:45:00+01:00",
        "requester": {"reference": refs[prescriber]},
        "dosageInstruction": [{"text": "selon le schéma de l'oncologue"}],
        "dispenseRequest": {"quantity": {"value": boxes, "unit": "boîte"}},
    }
    created = await client.post("/fhir/MedicationRequest", json=request)
    assert created.status_code == 201, created.text
    return f"MedicationRequest/{created.json()['id']}"


def tiers_payant() -> dict[str, Any]:
    coding = {"system": "http://terminology.hl7.org/CodeSystem/payeetype", "code": "provider"}
    return {"type": {"coding": [coding]}}


async def held_claim(
    client: httpx.AsyncClient,
    refs: dict[str, str],
    patient: str = FATIMA,
    pharmacy: str = PHARMACY,
    day: str = "2026-11-20",
) -> dict[str, Any]:
    """HERCEPTIN (prescribed by Dr El Idrissi) dispensed outside an ALD: held for review."""
    request = await prescribe(client, refs, HERCEPTIN, 1, patient)
    sheet = claim(
        refs,
        patient,
        [medicine(HERCEPTIN, "6890.00", request, day=day)],
        provider=pharmacy,
        kind="pharmacy",
        payee=tiers_payant(),
    )
    return (await client.post(SUBMIT, json=sheet)).json()


def review(decision: str, reason: str = "ordonnance vérifiée auprès du prescripteur") -> dict:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "decision", "valueCode": decision},
            {"name": "reason", "valueString": reason},
        ],
    }


def payments(platform: Platform) -> Payments:
    settings = platform.settings
    return Payments(platform.app.state.fhir, settings, schedule_of(settings).zone)


async def test_a_costly_medicine_outside_ald_is_held_not_paid(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    response = await held_claim(client, refs)
    assert response["outcome"] == "queued"
    assert validation_issues(response) == []
    assert adjudication(response, 0, "benefit") == 4823.0  # 70 % x 6,890.00 (PBR = PPV)
    assert response["item"][0]["adjudication"][3]["reason"]["coding"][0]["code"] == "R13"
    assert "costly_medicine" in response["processNote"][-1]["text"]
    # Held: no payment is announced, no date promised, until an agent decides.
    assert "payment" not in response
    assert "rien n'est payé avant la décision" in response["disposition"]
    assert "prévu" not in response["disposition"]
    async with platform.engine.connect() as conn:
        assert (await conn.execute(select(settlements.c.status))).scalar_one() == "held"
        assert (await conn.execute(select(settlements.c.approval_seq))).scalar_one() is None
        assert (await conn.execute(select(ledger_entries))).all() == []
    assert await payments(platform).run() == []


async def test_an_agent_releases_a_held_claim_once_and_it_is_paid(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    response = await held_claim(client, refs)
    url = f"/fhir/ClaimResponse/{response['id']}/$review"
    agent = {"Authorization": f"Bearer {await platform.token_with(role_scopes(Role.CNSS_AGENT))}"}
    released = await client.post(url, json=review("release"), headers=agent)
    assert released.status_code == 200, released.text
    assert released.json()["outcome"] == "complete"
    assert validation_issues(released.json()) == []
    assert released.json()["meta"]["versionId"] == "2"
    payment = released.json()["payment"]  # announced once released: the next cut-off
    assert payment["amount"]["value"] == 4823.0 and date.fromisoformat(payment["date"])
    again = await client.post(url, json=review("reject"), headers=agent)
    assert again.status_code == 409
    assert again.json()["issue"][0]["details"]["coding"][0]["code"] == "FSE-0027"
    results = await payments(platform).run()
    assert [(r.settlements, r.total) for r in results] == [(1, Decimal("4823.00"))]
    report = await check_ledger(platform.engine)
    assert report.ok, report.problems
    assert report.settlements_paid == 1 and report.paid == Decimal("4823.00")


async def test_a_rejected_held_claim_pays_nothing(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    response = await held_claim(client, refs)
    url = f"/fhir/ClaimResponse/{response['id']}/$review"
    rejected = (await client.post(url, json=review("reject", "pas d'indication"))).json()
    assert adjudication(rejected, 0, "benefit") == 0.0
    assert adjudication(rejected, 0, "copay") == 6890.0
    assert "payment" not in rejected
    assert await payments(platform).run() == []
    assert (await check_ledger(platform.engine)).ok


async def test_only_agents_review(client: httpx.AsyncClient, platform: Platform) -> None:
    refs = await load_demo(client)
    response = await held_claim(client, refs)
    doctor = await platform.token_with(role_scopes(Role.PRESCRIBER))
    answer = await client.post(
        f"/fhir/ClaimResponse/{response['id']}/$review",
        json=review("release"),
        headers={"Authorization": f"Bearer {doctor}"},
    )
    assert answer.status_code == 403


async def test_a_batch_pays_each_payee_once_with_a_pain001_file(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    for code, billed, day in (("C", "150.00", "2026-11-20"), ("C", "80.00", "2026-11-21")):
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act(code, billed, day)]))
    request = await prescribe(client, refs, ZOVIRAX, 2)
    pharmacy = claim(
        refs,
        FATIMA,
        [medicine(ZOVIRAX, "464.00", request, boxes=2)],
        provider=PHARMACY,
        kind="pharmacy",
        payee=tiers_payant(),
    )
    answer = (await client.post(SUBMIT, json=pharmacy)).json()
    assert adjudication(answer, 0, "benefit") == 292.6  # 70 % x 2 x PBR 209.00
    results = await payments(platform).run()
    assert len(results) == 1
    batch = results[0]
    assert (batch.settlements, batch.transfers, batch.total) == (3, 2, Decimal("404.60"))
    document = ET.parse(batch.file).getroot()
    assert document.findtext(f".//{PAIN}GrpHdr/{PAIN}NbOfTxs") == "2"
    assert document.findtext(f".//{PAIN}GrpHdr/{PAIN}CtrlSum") == "404.60"
    amounts = sorted(e.text for e in document.iter(f"{PAIN}InstdAmt"))
    assert amounts == ["112.00", "292.60"]  # Fatima's two sheets in one transfer; the pharmacy
    reconciliation = await client.get(f"/fhir/PaymentReconciliation/{batch.reconciliation_id}")
    assert reconciliation.json()["paymentAmount"]["value"] == 404.6
    assert await payments(platform).run() == []  # nothing twice
    report = await check_ledger(platform.engine)
    assert report.ok, report.problems
    assert (report.settlements_paid, report.settlements_owed) == (3, 0)


async def test_a_batch_interrupted_after_assignment_is_completed_by_the_next_run(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "150.00")]))
    payer = payments(platform)
    assert await payer._assign(datetime.now(UTC)) is not None  # then the process dies
    report = await check_ledger(platform.engine)
    assert report.ok and report.settlements_owed == 1
    results = await payments(platform).run()
    assert [r.resumed for r in results] == [True]
    report = await check_ledger(platform.engine)
    assert report.ok and (report.settlements_paid, report.paid) == (1, Decimal("56.00"))


async def test_the_database_refuses_double_payment_and_the_check_sees_tampering(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "150.00")]))
    await payments(platform).run()
    async with platform.engine.connect() as conn:
        pk = (await conn.execute(select(settlements.c.pk))).scalar_one()
        batch = (await conn.execute(select(payment_batches))).one()
    now = datetime.now(UTC)
    second_batch = {
        "batch_id": "again",
        "created_at": now,
        "execution_date": now.date(),
        "first_seq": batch.first_seq,
        "last_seq": batch.last_seq + 5,
        "status": "assigned",
    }
    with pytest.raises(IntegrityError):  # the same approval numbers cannot be batched twice
        async with platform.engine.begin() as conn:
            await conn.execute(insert(payment_batches).values(**second_batch))
    benefit = {
        "journal": "again",
        "account": "benefits",
        "kind": "benefit",
        "amount": Decimal("56.00"),
        "settlement_pk": pk,
        "created_at": now,
    }
    with pytest.raises(IntegrityError):  # nor expensed twice
        async with platform.engine.begin() as conn:
            await conn.execute(insert(ledger_entries).values(**benefit))
    fraud = {
        "journal": "fraud",
        "account": "bank",
        "kind": "payment",
        "amount": Decimal("-56.00"),
        "created_at": now,
    }
    with pytest.raises(IntegrityError):  # nor the batch booked twice
        async with platform.engine.begin() as conn:
            await conn.execute(insert(ledger_entries).values(**fraud, batch_pk=batch.pk))
    async with platform.engine.begin() as conn:
        await conn.execute(insert(ledger_entries).values(**fraud))
    report = await check_ledger(platform.engine)
    assert not report.ok
    assert any("fraud" in problem for problem in report.problems)


async def test_a_batch_that_fails_while_writing_its_file_is_completed_by_the_next_run(
    client: httpx.AsyncClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = await load_demo(client)
    await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "150.00")]))

    def broken(out: Any, *_args: Any) -> None:
        out.write(b"<?xml version=")  # the disk fills, the process is killed...
        raise OSError("No space left on device")

    files = Path(platform.settings.payments_dir)
    earlier = set(files.glob("*.xml"))  # other tests' batches share the directory
    monkeypatch.setattr("reimbursement.payments.write_pain001", broken)
    with pytest.raises(OSError):
        await payments(platform).run()
    report = await check_ledger(platform.engine)
    assert report.ok and (report.settlements_owed, report.settlements_paid) == (1, 0)
    assert set(files.glob("*.xml")) == earlier  # no file under a final name, only a .partial
    monkeypatch.undo()
    results = await payments(platform).run()
    assert [(r.resumed, r.settlements) for r in results] == [(True, 1)]
    assert ET.parse(results[0].file).getroot().tag == f"{PAIN}Document"
    assert (await check_ledger(platform.engine)).paid == Decimal("56.00")
