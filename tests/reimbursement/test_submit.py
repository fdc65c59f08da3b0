"""Claim/$submit: settled at once, answered with a ClaimResponse, booked once, replayed."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import httpx
from sqlalchemy import func, select

from fse.resources import validation_issues
from reimbursement.context import peer_mean_on
from reimbursement.ledger import cancel_settlement
from reimbursement.tables import ledger_entries, provider_days, settlement_lines, settlements
from tests.conftest import Platform
from tests.reimbursement.demo import (
    AMINE,
    DR_BENALI,
    DR_ELIDRISSI,
    FATIMA,
    FSE,
    LATIFA,
    OUAZZANI,
    SARA,
    TAZI,
    act,
    adjudication,
    claim,
    load_demo,
    next_number,
    total,
)

SUBMIT = "/fhir/Claim/$submit"
HOSPITAL_RIB = "007780000000000000009957"


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


async def test_a_widow_with_maintained_rights_is_paid_herself(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    response = (await client.post(SUBMIT, json=claim(refs, LATIFA, [act("C", "80.00")]))).json()
    assert response["outcome"] == "complete"
    assert adjudication(response, 0, "benefit") == 56.0
    async with platform.engine.connect() as conn:
        row = (await conn.execute(select(settlements))).one()
    assert row.payee_ref == refs[LATIFA] and row.payee_iban is not None


async def test_tadamon_in_a_public_hospital_is_free_and_paid_to_the_hospital(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    hospital = {
        "resourceType": "Organization",
        "identifier": [
            {"system": "https://fse.cnss.ma/fhir/sid/inpe", "value": "400000016"},
            {"system": "https://fse.cnss.ma/fhir/sid/rib", "value": HOSPITAL_RIB},
        ],
        "active": True,
        "name": "Hôpital régional de Kénitra",
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "govt",
                    }
                ]
            }
        ],
    }
    created = await client.post("/fhir/Organization", json=hospital)
    assert created.status_code == 201, created.text
    sheet = claim(refs, OUAZZANI, [act("C", "80.00")])
    sheet["facility"] = {"reference": f"Organization/{created.json()['id']}"}
    response = (await client.post(SUBMIT, json=sheet)).json()
    assert adjudication(response, 0, "eligpercent") == 100.0
    assert adjudication(response, 0, "benefit") == 80.0
    assert response["payeeType"]["coding"][0]["code"] == "provider"
    private = (
        await client.post(SUBMIT, json=claim(refs, OUAZZANI, [act("C", "80.00", "2026-11-19")]))
    ).json()
    assert adjudication(private, 0, "benefit") == 56.0  # 70 % in the private sector, to the insured
    assert private["payeeType"]["coding"][0]["code"] == "subscriber"


def by_identifiers(number: str, immatriculation: str = "123456789") -> dict[str, object]:
    """A claim as a CNSS system writes it: references by immatriculation, INPE, coverage id."""
    sid = "https://fse.cnss.ma/fhir/sid"
    sheet = claim(
        {k: "Patient/x" for k in (FATIMA, "0001", "0010", "0200")},
        FATIMA,
        [act("C", "150.00")],
        number=number,
    )
    sheet["patient"] = {
        "identifier": {"system": f"{sid}/immatriculation", "value": immatriculation}
    }
    sheet["provider"] = {"identifier": {"system": f"{sid}/inpe", "value": "100000019"}}
    sheet["insurer"] = {"identifier": {"system": f"{sid}/organisme", "value": "CNSS"}}
    sheet["insurance"][0]["coverage"] = {
        "identifier": {"system": f"{sid}/couverture", "value": "123456789-00"}
    }
    return sheet


async def test_references_by_identifier_are_resolved(client: httpx.AsyncClient) -> None:
    refs = await load_demo(client)
    response = (await client.post(SUBMIT, json=by_identifiers(next_number()))).json()
    assert response["outcome"] == "complete", response
    assert adjudication(response, 0, "benefit") == 56.0
    assert response["patient"]["reference"] == refs[FATIMA]
    assert response["requestor"]["reference"] == refs["0010"]


async def test_an_unknown_immatriculation_is_named_and_nothing_stored(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await load_demo(client)
    before = await platform.row_counts()
    answer = await client.post(SUBMIT, json=by_identifiers(next_number(), "999999999"))
    assert answer.status_code == 422
    issue = answer.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "FSE-0026"
    assert issue["expression"] == ["Claim.patient.identifier"]
    assert await platform.row_counts() == before


async def test_each_providers_acts_of_a_day_are_kept_as_the_volume_rule_counts_them(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """The rule counts a provider's accepted NGAP acts on a day, whatever became of their sheets;
    ``provider_days`` holds that count, kept by each settlement, so nothing counts lines."""
    refs = await load_demo(client)
    sheets = [
        claim(refs, FATIMA, [act("C", "80.00"), act("Cs", "150.00")]),  # a GP's Cs is refused
        claim(refs, FATIMA, [act("V", "120.00"), act("C", "80.00", "2026-11-19")]),  # two days
        claim(refs, AMINE, [act("C", "80.00")]),
        claim(refs, FATIMA, [act("CsC", "300.00")], provider=DR_ELIDRISSI),
    ]
    for sheet in sheets:
        answer = await client.post(SUBMIT, json=sheet)
        assert answer.status_code == 200, answer.text
    async with platform.engine.begin() as conn:  # a cancelled sheet's acts stay counted
        await cancel_settlement(
            conn, f"{FSE}|{sheets[2]['identifier'][0]['value']}", datetime.now(UTC)
        )
    lines = settlement_lines.c
    async with platform.engine.connect() as conn:
        kept = {
            (r.provider_ref, r.care_date): r.ngap_acts
            for r in await conn.execute(select(provider_days))
        }
        counted = await conn.execute(
            select(lines.provider_ref, lines.care_date, func.count())
            .where(lines.kind == "ngap", lines.accepted.is_(True))
            .group_by(lines.provider_ref, lines.care_date)
        )
    benali, elidrissi = refs[DR_BENALI], refs[DR_ELIDRISSI]
    assert kept == {(p, d): n for p, d, n in counted}
    assert kept == {
        (benali, date(2026, 11, 20)): 3,  # C, V, Amine's C (cancelled); not the refused Cs
        (benali, date(2026, 11, 19)): 1,
        (elidrissi, date(2026, 11, 20)): 1,
    }


async def test_the_peers_daily_mean_is_counted_once_then_reused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    for code, day in (("C", "2026-11-20"), ("Cs", "2026-11-20")):
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act(code, "80.00", day)]))
    await client.post(
        SUBMIT, json=claim(refs, FATIMA, [act("CsC", "300.00")], provider=DR_ELIDRISSI)
    )
    cache = platform.app.state.runtime.cache
    day = date(2026, 11, 20)
    await cache.delete(f"settle:peer-mean:{day.isoformat()}")
    async with platform.engine.connect() as conn:
        # Dr Benali's C (his Cs is refused: a GP) and Dr El Idrissi's CsC: 2 acts, 2 providers.
        assert await peer_mean_on(conn, cache, day) == 1
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act("V", "120.00")]))
        assert await peer_mean_on(conn, cache, day) == 1  # cached for 5 minutes
    await cache.delete(f"settle:peer-mean:{day.isoformat()}")
    async with platform.engine.connect() as conn:
        assert await peer_mean_on(conn, cache, day) == 1.5  # 3 acts, 2 providers


async def test_a_provider_that_does_not_exist_is_named_and_nothing_is_stored(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """The engine reads the provider with the insured (one statement); one that is not there,
    of any of the three kinds a claim may name, is a 422 at ``Claim.provider``."""
    refs = await load_demo(client)
    for provider in ("Practitioner/nobody", "PractitionerRole/nobody", "Organization/nobody"):
        sheet = claim(refs, FATIMA, [act("C", "150.00")])
        sheet["provider"] = {"reference": provider}
        before = await platform.row_counts()
        answer = await client.post(SUBMIT, json=sheet)
        assert answer.status_code == 422, (provider, answer.text)
        issue = answer.json()["issue"][0]
        assert issue["details"]["coding"][0]["code"] == "FSE-0026"
        assert issue["expression"] == ["Claim.provider"]
        assert provider in issue["diagnostics"]
        assert await platform.row_counts() == before
