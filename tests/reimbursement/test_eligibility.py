"""CoverageEligibilityRequest/$submit, and the guarantee it gives the claim that names it."""

from __future__ import annotations

import httpx

from tests.reimbursement.demo import (
    BENNANI,
    COVERAGE,
    ELIGIBILITY,
    FASSI,
    FATIMA,
    TAZI,
    act,
    adjudication,
    claim,
    load_demo,
)

ELIGIBLE = "/fhir/CoverageEligibilityRequest/$submit"


def request(refs: dict[str, str], patient: str, day: str = "2026-11-20") -> dict[str, object]:
    return {
        "resourceType": "CoverageEligibilityRequest",
        "status": "active",
        "purpose": ["validation", "benefit"],
        "patient": {"reference": refs[patient]},
        "servicedDate": day,
        "created": "2026-11-20T09:00:00+01:00",
        "insurer": {"reference": refs["0001"]},
    }


def rates(answer: dict[str, object]) -> dict[str, int]:
    insurance = answer["insurance"][0]  # type: ignore[index]
    return {
        item["category"]["coding"][0]["code"]: item["benefit"][0]["allowedUnsignedInt"]
        for item in insurance.get("item", [])
    }


async def test_open_rights_come_with_the_rates(client: httpx.AsyncClient) -> None:
    refs = await load_demo(client)
    answer = (await client.post(ELIGIBLE, json=request(refs, FATIMA))).json()
    assert answer["resourceType"] == "CoverageEligibilityResponse"
    assert answer["insurance"][0]["inforce"] is True
    assert answer["insurance"][0]["coverage"]["reference"] == refs[COVERAGE[FATIMA]]
    assert rates(answer)["ambulatory"] == 70 and rates(answer)["medicines"] == 70
    assert "error" not in answer


async def test_an_ald_shows_its_exoneration_rate(client: httpx.AsyncClient) -> None:
    refs = await load_demo(client)
    answer = (await client.post(ELIGIBLE, json=request(refs, FASSI))).json()
    assert rates(answer)["ALD-E11"] == 95


async def test_a_waiting_period_says_when_rights_open(client: httpx.AsyncClient) -> None:
    refs = await load_demo(client)
    answer = (await client.post(ELIGIBLE, json=request(refs, BENNANI))).json()
    assert answer["insurance"][0]["inforce"] is False
    assert answer["error"][0]["code"]["coding"][0]["code"] == "R02"
    assert "01/01/2027" in answer["disposition"]


async def test_closed_rights_answer_r01(client: httpx.AsyncClient) -> None:
    refs = await load_demo(client)
    answer = (await client.post(ELIGIBLE, json=request(refs, TAZI))).json()
    assert answer["insurance"][0]["inforce"] is False
    assert answer["error"][0]["code"]["coding"][0]["code"] == "R01"


async def test_a_claim_on_confirmed_rights_is_paid_even_if_rights_close_later(
    client: httpx.AsyncClient,
) -> None:
    refs = await load_demo(client)
    confirmed = (await client.post(ELIGIBLE, json=request(refs, FATIMA))).json()
    # CNSS closes the rights after the visit (unpaid contributions), retroactively.
    coverage = (await client.get(f"/fhir/{refs[COVERAGE[FATIMA]]}")).json()
    coverage["extension"][0]["valueCoding"]["code"] = "fermes-cotisations"
    assert (await client.put(f"/fhir/{refs[COVERAGE[FATIMA]]}", json=coverage)).status_code == 200
    plain = claim(refs, FATIMA, [act("C", "80.00")])
    assert (await client.post("/fhir/Claim/$submit", json=plain)).json()["outcome"] == "error"
    guaranteed = claim(refs, FATIMA, [act("C", "80.00")])
    guaranteed["insurance"][0]["extension"] = [
        {
            "url": ELIGIBILITY,
            "valueReference": {"reference": f"CoverageEligibilityResponse/{confirmed['id']}"},
        }
    ]
    response = (await client.post("/fhir/Claim/$submit", json=guaranteed)).json()
    assert response["outcome"] == "complete"
    assert adjudication(response, 0, "benefit") == 56.0
