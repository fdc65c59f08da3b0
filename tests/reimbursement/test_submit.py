"""Claim/$submit: settled at once, answered with a ClaimResponse, booked once, replayed."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select

from fse.resources import validation_issues
from reimbursement.tables import ledger_entries, settlements
from tests.conftest import Platform
from tests.reimbursement.demo import (
    DR_ELIDRISSI,
    FATIMA,
    SARA,
    TAZI,
    act,
    adjudication,
    claim,
    load_demo,
    total,
)

SUBMIT = "/fhir/Claim/$submit"


async def test_a_consultation_is_settled_at_once(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    sheet = claim(refs, FATIMA, [act("C", "150.00")])
    answer = await client.post(SUBMIT, json=sheet)
    assert answer.status_code == 200, answer.text
    response = answer.json()
    assert response["resourceType"] == "ClaimResponse"
    assert response["outcome"] == "complete"
    # 70 % x min(150, TNR 2006 C 80) = 56.00; the insured keeps 94.00 (fees above the tariff).
    assert adjudication(response, 0, "submitted") == 150.0
    assert adjudication(response, 0, "eligible") == 80.0
    assert adjudication(response, 0, "eligpercent") == 70.0
    assert adjudication(response, 0, "benefit") == 56.0
    assert adjudication(response, 0, "copay") == 94.0
    assert total(response, "benefit") == 56.0
    assert response["payment"]["amount"]["value"] == 56.0
    assert response["payeeType"]["coding"][0]["code"] == "subscriber"
    async with platform.engine.connect() as conn:
        row = (await conn.execute(select(settlements))).one()
        entries = (await conn.execute(select(ledger_entries))).all()
    assert row.status == "approved" and str(row.benefit) == "56.00"
    assert row.payee_ref == refs[FATIMA] and row.payee_iban.startswith("MA")
    assert sorted(str(e.amount) for e in entries) == ["-56.00", "56.00"]
    stored = await client.get(f"/fhir/ClaimResponse?request=Claim/{row.claim_id}")
    assert len(stored.json()["entry"]) == 1
    eob = (await client.get(f"/fhir/ExplanationOfBenefit?patient={refs[FATIMA]}")).json()
    explanation = eob["entry"][0]["resource"]
    assert explanation["total"][2]["amount"]["value"] == 56.0
    # Stored without the model check on the hot path: the shapes must still be valid FHIR R4B.
    assert validation_issues(response) == []
    assert validation_issues(explanation) == []


async def test_resubmitting_returns_the_first_answer_and_pays_nothing_more(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    sheet = claim(refs, FATIMA, [act("C", "150.00")])
    first = await client.post(SUBMIT, json=sheet)
    before = await platform.row_counts()
    again = await client.post(SUBMIT, json=sheet)
    assert again.status_code == 200
    assert again.headers["X-FSE-Replayed"] == "true"
    assert again.json() == first.json()
    assert await platform.row_counts() == before


async def test_concurrent_retries_settle_once(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    sheet = claim(refs, FATIMA, [act("C", "150.00")])
    answers = await asyncio.gather(*(client.post(SUBMIT, json=sheet) for _ in range(12)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["id"] for a in answers}) == 1
    async with platform.engine.connect() as conn:
        assert len((await conn.execute(select(settlements))).all()) == 1
        assert len((await conn.execute(select(ledger_entries))).all()) == 2


async def test_closed_rights_are_an_error_with_the_reason(client: httpx.AsyncClient) -> None:
    refs = await load_demo(client)
    answer = await client.post(SUBMIT, json=claim(refs, TAZI, [act("C", "80.00")]))
    response = answer.json()
    assert validation_issues(response) == []
    assert response["outcome"] == "error"
    assert response["error"][0]["code"]["coding"][0]["code"] == "R01"
    assert adjudication(response, 0, "benefit") == 0.0
    assert adjudication(response, 0, "copay") == 80.0
    assert "payment" not in response


async def test_a_dependant_over_the_age_limit_is_refused(client: httpx.AsyncClient) -> None:
    refs = await load_demo(client)
    response = (await client.post(SUBMIT, json=claim(refs, SARA, [act("C", "80.00")]))).json()
    assert response["error"][0]["code"]["coding"][0]["code"] == "R03"


async def test_a_gp_cannot_bill_a_cardiology_consultation(client: httpx.AsyncClient) -> None:
    refs = await load_demo(client)
    gp = (await client.post(SUBMIT, json=claim(refs, FATIMA, [act("CsC", "300.00")]))).json()
    benefit = gp["item"][0]["adjudication"][3]
    assert benefit["reason"]["coding"][0]["code"] == "R08"
    cardio = claim(refs, FATIMA, [act("CsC", "300.00")], provider=DR_ELIDRISSI)
    assert adjudication((await client.post(SUBMIT, json=cardio)).json(), 0, "benefit") == 133.0


async def test_a_claim_missing_what_adjudication_needs_stores_nothing(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    sheet = claim(refs, FATIMA, [act("C", "150.00")])
    del sheet["item"][0]["servicedDate"]
    before = await platform.row_counts()
    answer = await client.post(SUBMIT, json=sheet)
    assert answer.status_code == 422
    issue = answer.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "FSE-0026"
    assert issue["expression"] == ["Claim.item[0].servicedDate"]
    assert await platform.row_counts() == before
