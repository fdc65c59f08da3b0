"""Dispensing: one transaction, priced at once on the PBR, exactly once, every refusal."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from fse.crypto.provenance import jws_of, verify
from pharmacy.dispense import DispenseConflict, DispenseRefused
from pharmacy.numbers import claim_number
from pharmacy.receipt import load_dispense
from pharmacy.reversal import reverse_dispense
from pharmacy.tables import dispensations, prescription_balances
from prescriber.cancel import cancel_sheet
from prescriber.history import load_sheet
from reimbursement.ledger import check_ledger
from reimbursement.status import Stage
from reimbursement.tables import settlements
from tests.conftest import Platform
from tests.pharmacy.helpers import (
    AMOXI_GEN,
    AT,
    CICLOVIRAL,
    ZOVIRAX,
    counter,
    fatima_sheet,
    line,
    order,
)
from tests.prescriber.test_sheets import FULL_VISIT, sign_as_benali, visit_of
from tests.reimbursement.demo import DR_BENALI, FATIMA, PHARMACIST_2, TAZI
from tests.reimbursement.test_review_and_payments import payments

M = Decimal


async def read(client: httpx.AsyncClient, reference: str) -> dict:  # type: ignore[type-arg]
    response = await client.get(f"/fhir/{reference}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_generic_for_one_line_and_half_of_the_other_settled_at_once(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    found = await desk.lines(sheet.number)
    zovirax, ciclo = line(found, "ZOVIRAX"), line(found, "CICLOVIRAL")
    done = await desk.dispense(
        zovirax.patient_id,
        order(zovirax, 1, CICLOVIRAL, "209.00"),  # the generic, on its own PBR
        order(ciclo, 1, price="209.00"),  # one of two boxes
    )
    view = await load_dispense(platform.app.state.fhir, done.number)
    assert view is not None and not done.replayed
    # Each line: base 209.00 (PBR) at 70 % = 146.30 from CNSS, 62.70 for the insured.
    assert [
        (x.amounts.eligible, x.amounts.rate, x.amounts.benefit, x.amounts.copay) for x in view.lines
    ] == [(M("209.00"), M(70), M("146.30"), M("62.70"))] * 2
    assert sorted(x.substituted for x in view.lines) == [False, True]
    log = (await client.get("/fhir/AuditEvent", params={"action": "C"})).json()
    (audited,) = [  # who dispensed, for which pharmacy
        e["resource"] for e in log["entry"] if "délivrance" in e["resource"]["outcomeDesc"]
    ]
    assert [a["who"]["reference"] for a in audited["agent"]] == [
        desk.pharmacist.practitioner,
        desk.pharmacist.pharmacy,
    ]
    assert f"délivrance {done.number} : 2 boîte(s)" == audited["outcomeDesc"]
    assert (view.total, view.benefit, view.at_counter) == (M("418.00"), M("292.60"), M("418.00"))
    # What CNSS reads: the dispenses, the remaining quantities, the claim and its answer.
    bundle = (await client.get("/fhir/MedicationDispense", params={"subject": refs[FATIMA]})).json()
    dispenses = [e["resource"] for e in bundle["entry"]]
    assert len(dispenses) == 2 and {d["status"] for d in dispenses} == {"completed"}
    substituted = next(d for d in dispenses if d["substitution"]["wasSubstituted"])
    assert substituted["medicationCodeableConcept"]["coding"][0]["code"] == CICLOVIRAL
    assert {a["actor"]["reference"] for a in substituted["performer"]} == {
        desk.pharmacist.practitioner,
        desk.pharmacist.pharmacy,
    }
    zovirax_request = await read(client, f"MedicationRequest/{zovirax.request_id}")
    ciclo_request = await read(client, f"MedicationRequest/{ciclo.request_id}")
    assert zovirax_request["status"] == "completed" and ciclo_request["status"] == "active"
    assert ciclo_request["extension"][-1]["valueQuantity"]["value"] == 1
    claims = (
        await client.get(
            "/fhir/Claim",
            params={"identifier": f"https://fse.cnss.ma/fhir/sid/fse|{claim_number(done.number)}"},
        )
    ).json()
    claim = claims["entry"][0]["resource"]
    assert claim["type"]["coding"][0]["code"] == "pharmacy"
    assert claim["provider"]["reference"] == desk.pharmacist.pharmacy
    responses = (
        await client.get("/fhir/ClaimResponse", params={"request": f"Claim/{claim['id']}"})
    ).json()
    assert responses["entry"][0]["resource"]["total"][2]["amount"]["value"] == 292.60
    # Signed by the pharmacist over the dispenses and the claim, as written.
    provenances = (
        await client.get("/fhir/Provenance", params={"agent": desk.pharmacist.practitioner})
    ).json()
    provenance = provenances["entry"][0]["resource"]
    signed = [
        await read(client, t["reference"].split("/_history")[0]) for t in provenance["target"]
    ]
    assert len(signed) == 3 and verify(desk.jwk, jws_of(provenance), signed)
    # The other box stays open; the ledger owes the benefit once.
    after = await desk.lines(sheet.number)
    assert [(x.request_id, x.remaining) for x in after] == [(ciclo.request_id, 1)]
    report = await check_ledger(platform.engine)
    assert report.ok and report.owed == M("348.60")  # 56.00 (the doctor's C) + 292.60


async def test_a_princeps_above_the_pbr_under_tiers_payant(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    zovirax = line(await desk.lines(sheet.number), "ZOVIRAX")
    done = await desk.dispense(
        zovirax.patient_id, order(zovirax, 1, price="232.00"), tiers_payant=True
    )
    view = await load_dispense(platform.app.state.fhir, done.number)
    assert view is not None and view.tiers_payant
    # The GMR example: PPV 232.00, PBR 209.00: CNSS pays 146.30, the insured 85.70 at the counter.
    assert (view.lines[0].amounts.benefit, view.at_counter) == (M("146.30"), M("85.70"))
    async with platform.engine.connect() as conn:  # ... and CNSS pays the pharmacy, not her
        payee = (
            await conn.execute(
                select(settlements.c.payee_kind, settlements.c.payee_ref).where(
                    settlements.c.claim_key
                    == f"https://fse.cnss.ma/fhir/sid/fse|{claim_number(done.number)}"
                )
            )
        ).one()
    assert tuple(payee) == ("provider", desk.pharmacist.pharmacy)


async def test_more_than_is_left_of_a_line_already_begun_takes_nothing(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """Once a line has a balance row, the take and its limit are one statement: asking for
    more than is left is refused by name, the balance and everything else unchanged."""
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    ciclo = line(await desk.lines(sheet.number), "CICLOVIRAL")
    await desk.dispense(ciclo.patient_id, order(ciclo, 1, price="209.00"))
    now = line(await desk.lines(sheet.number), "CICLOVIRAL")  # 1 left, as the page shows
    before = await platform.row_counts()
    with pytest.raises(DispenseRefused, match=r"supérieure au reste à délivrer \(1\)"):
        await desk.dispense(now.patient_id, order(now, 2, price="418.00"))
    with pytest.raises(DispenseConflict, match=r"il reste 1 boîte\(s\) \(vous en voyiez 2\)"):
        await desk.dispense(ciclo.patient_id, order(ciclo, 1, price="209.00"))  # a stale page
    assert await platform.row_counts() == before
    async with platform.engine.connect() as conn:
        taken = await conn.scalar(
            select(prescription_balances.c.dispensed).where(
                prescription_balances.c.request_id == ciclo.request_id
            )
        )
    assert Decimal(taken) == 1


async def test_every_refusal_stores_nothing(platform: Platform, client: httpx.AsyncClient) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    found = await desk.lines(sheet.number)
    zovirax, ciclo = line(found, "ZOVIRAX"), line(found, "CICLOVIRAL")
    patient = zovirax.patient_id
    before = await platform.row_counts()
    refusals = [
        (order(ciclo, 3), r"supérieure au reste à délivrer \(2\)"),
        (order(ciclo, 1, ZOVIRAX), "non substituable"),
        (order(zovirax, 1, AMOXI_GEN), "n'est pas un générique"),
        (order(zovirax, 0), "nombre entier de boîtes"),
        (order(zovirax, 1, price="232.01"), r"au-dessus du prix public \(PPV 232,00\u00a0MAD × 1"),
    ]
    for attempt, message in refusals:
        with pytest.raises(DispenseRefused, match=message) as refused:
            await desk.dispense(patient, attempt)
        assert refused.value.field == f"ligne-{attempt.request_id}"
    with pytest.raises(DispenseRefused, match="supérieure"):  # all lines or none
        await desk.dispense(patient, order(zovirax, 1), order(ciclo, 3))
    with pytest.raises(DispenseRefused, match="en double"):
        await desk.dispense(patient, order(ciclo, 1), order(ciclo, 1))
    with pytest.raises(DispenseRefused, match="Prescription expirée le 20/02/2027"):
        await desk.dispense(patient, order(ciclo, 1), when=AT + timedelta(days=100))
    with pytest.raises(DispenseRefused, match="autre assuré"):
        await desk.dispense(refs[TAZI].split("/")[1], order(ciclo, 1))
    assert await platform.row_counts() == before
    view = await load_sheet(platform.app.state.fhir, sheet.number)
    assert view is not None
    await cancel_sheet(platform.app.state.fhir, view, refs[DR_BENALI], AT)
    cancelled = await platform.row_counts()
    with pytest.raises(DispenseRefused, match="annulée par le médecin"):
        await desk.dispense(patient, order(ciclo, 1))
    assert await platform.row_counts() == cancelled


async def test_closed_rights_dispensed_but_not_reimbursed(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, _ = await fatima_sheet(platform, client)
    sheet = await sign_as_benali(platform, refs, TAZI, visit_of(FULL_VISIT))
    desk = await counter(platform, refs)
    ciclo = line(await desk.lines(sheet.number), "CICLOVIRAL")
    done = await desk.dispense(ciclo.patient_id, order(ciclo, 2, price="418.00"))
    view = await load_dispense(platform.app.state.fhir, done.number)
    assert view is not None and view.status.stage == Stage.REJECTED
    assert (view.benefit, view.at_counter) == (M("0.00"), M("418.00"))
    assert view.lines[0].amounts.reason == "Droits fermés à la date des soins"


async def test_a_retried_request_returns_the_first_dispense(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    ciclo = line(await desk.lines(sheet.number), "CICLOVIRAL")
    key = uuid.uuid4().hex
    first = await desk.dispense(ciclo.patient_id, order(ciclo, 1), idempotency_key=key)
    counts = await platform.row_counts()
    again = await desk.dispense(ciclo.patient_id, order(ciclo, 1), idempotency_key=key)
    assert (again.number, again.replayed) == (first.number, True)
    assert await platform.row_counts() == counts
    with pytest.raises(DispenseRefused, match="clé d'idempotence"):
        await desk.dispense(ciclo.patient_id, order(ciclo, 2), idempotency_key=key)
    # A double click: the same request twice at once stores one dispense.
    key = uuid.uuid4().hex
    fresh = line(await desk.lines(sheet.number), "CICLOVIRAL")
    both = await asyncio.gather(
        *(desk.dispense(fresh.patient_id, order(fresh, 1), idempotency_key=key) for _ in "ab")
    )
    assert both[0].number == both[1].number and sorted(d.replayed for d in both) == [False, True]


async def test_fifty_pharmacies_at_once_on_one_line_exactly_one_dispenses(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    desks = [await counter(platform, refs), await counter(platform, refs, PHARMACIST_2)]
    ciclo = line(await desks[0].lines(sheet.number), "CICLOVIRAL")
    before = await platform.row_counts()
    results = await asyncio.gather(
        *(
            desks[i % 2].dispense(ciclo.patient_id, order(ciclo, 2, price="418.00"))
            for i in range(50)
        ),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1, lost[:3]
    assert len(lost) == 49 and all(isinstance(r, DispenseConflict) for r in lost), lost[:3]
    async with platform.engine.connect() as conn:
        rows = (await conn.execute(select(dispensations.c.number))).all()
        balance = await conn.scalar(
            select(prescription_balances.c.dispensed).where(
                prescription_balances.c.request_id == ciclo.request_id
            )
        )
    assert [r.number for r in rows] == [won[0].number] and balance == 2
    after = await platform.row_counts()
    # Only the winner's writes: 1 dispense, 1 claim, 1 answer, 1 EOB, 1 provenance, 1 request
    # version, its settlement, its two ledger entries, its balance and its dispensation row.
    assert after["dispensations"] - before["dispensations"] == 1
    assert after["settlements"] - before["settlements"] == 1
    assert (await check_ledger(platform.engine)).ok


async def test_reversal_same_day_same_pharmacy_only(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    other = await counter(platform, refs, PHARMACIST_2)
    zone = platform.app.state.settlement.schedule.zone
    fhir = platform.app.state.fhir
    ciclo = line(await desk.lines(sheet.number), "CICLOVIRAL")
    done = await desk.dispense(ciclo.patient_id, order(ciclo, 2, price="418.00"))
    assert await desk.lines(sheet.number) == [line(await desk.lines(sheet.number), "ZOVIRAX")]
    with pytest.raises(DispenseRefused, match="introuvable pour votre pharmacie"):
        await reverse_dispense(fhir, other.pharmacist, done.number, AT, zone)
    with pytest.raises(DispenseRefused, match="jour même"):
        await reverse_dispense(fhir, desk.pharmacist, done.number, AT + timedelta(days=1), zone)
    await reverse_dispense(fhir, desk.pharmacist, done.number, AT + timedelta(hours=2), zone)
    restored = line(await desk.lines(sheet.number), "CICLOVIRAL")
    assert restored.remaining == 2
    view = await load_dispense(fhir, done.number)
    assert view is not None and view.reversed
    dispensed = (
        await client.get("/fhir/MedicationDispense", params={"subject": refs[FATIMA]})
    ).json()
    assert dispensed["entry"][0]["resource"]["status"] == "entered-in-error"
    report = await check_ledger(platform.engine)
    assert report.ok and report.owed == M("56.00")  # only the doctor's consultation
    audits = (await client.get("/fhir/AuditEvent", params={"action": "U"})).json()
    assert any(
        f"délivrance {done.number} annulée" in e["resource"].get("outcomeDesc", "")
        for e in audits["entry"]
    )
    with pytest.raises(DispenseRefused, match="déjà annulée"):
        await reverse_dispense(fhir, desk.pharmacist, done.number, AT, zone)
    # The boxes are back: another pharmacy dispenses them, and once paid, no reversal.
    again = await other.dispense(restored.patient_id, order(restored, 2, price="418.00"))
    assert len(await payments(platform).run()) == 1
    with pytest.raises(DispenseRefused, match="déjà parti dans un lot"):
        await reverse_dispense(fhir, other.pharmacist, again.number, AT + timedelta(hours=4), zone)


async def test_the_rest_api_cannot_write_dispenses_around_the_pharmacy(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """Even a system client allowed every write gets 405: the balance, the signature and the
    settlement of a dispense only come from the pharmacy's dispense."""
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    ciclo = line(await desk.lines(sheet.number), "CICLOVIRAL")
    done = await desk.dispense(ciclo.patient_id, order(ciclo, 1, price="209.00"))
    found = await client.get("/fhir/MedicationDispense", params={"subject": refs[FATIMA]})
    stored = found.json()["entry"][0]["resource"]
    assert stored["identifier"][0]["value"] == f"{done.number}-D1"
    raw = {k: v for k, v in stored.items() if k not in ("id", "meta")}
    before = await platform.row_counts()
    for answer in (
        await client.post("/fhir/MedicationDispense", json=raw),
        await client.put(f"/fhir/MedicationDispense/{stored['id']}", json=stored),
        await client.delete(f"/fhir/MedicationDispense/{stored['id']}"),
        await client.post(
            "/fhir",
            json={
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {"resource": raw, "request": {"method": "POST", "url": "MedicationDispense"}}
                ],
            },
        ),
    ):
        assert answer.status_code == 405, answer.text
        issue = answer.json()["issue"][0]
        assert issue["details"]["coding"][0]["code"] == "FSE-0010"
        assert "pharmacy screen" in issue["diagnostics"]
    assert await platform.row_counts() == before
    statement = (await client.get("/fhir/metadata")).json()
    entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "MedicationDispense")
    assert [i["code"] for i in entry["interaction"]] == [
        "read",
        "vread",
        "history-instance",
        "history-type",
        "search-type",
    ]
    assert "no REST create/update/delete" in entry["documentation"]
