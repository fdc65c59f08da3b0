"""A Claim item naming an NGAP act beside its key letter (``ngap-actes`` coding): priced by the
key letter, held to the act's coefficient (R10) where the list's value is sound."""

from __future__ import annotations

from typing import Any

import httpx

from tests.reimbursement.demo import DR_ELIDRISSI, FATIMA, act, adjudication, claim, load_demo

SUBMIT = "/fhir/Claim/$submit"
ACTS = "https://fse.cnss.ma/fhir/CodeSystem/ngap-actes"


def naming(item: dict[str, Any], code: str) -> dict[str, Any]:
    item["productOrService"]["coding"].append({"system": ACTS, "code": code})
    return item


def reason_of(response: dict[str, Any], item: int) -> str | None:
    benefit = next(
        a
        for a in response["item"][item]["adjudication"]
        if a["category"]["coding"][0]["code"] == "benefit"
    )
    return (benefit.get("reason") or {}).get("coding", [{}])[0].get("code")


async def test_a_claim_naming_an_act_is_held_to_its_coefficient(client: httpx.AsyncClient) -> None:
    refs = await load_demo(client)
    lines = [
        naming(act("K", "2025.00", coefficient="90"), "J203"),  # above J203's 82
        naming(act("K", "1845.00", coefficient="82"), "J203"),  # at it
        naming(act("K", "675.00", coefficient="30"), "T100"),  # printed twice: no limit
        act("K", "2025.00", coefficient="90"),  # no act named: the key letter's range only
    ]
    answer = await client.post(SUBMIT, json=claim(refs, FATIMA, lines, provider=DR_ELIDRISSI))
    assert answer.status_code == 200, answer.text
    response = answer.json()
    assert reason_of(response, 0) == "R10"
    notes = {n["number"]: n["text"] for n in response.get("processNote", [])}
    assert "coefficient 90 > 82 pour l'acte J203" in notes[response["item"][0]["noteNumber"][0]]
    assert adjudication(response, 1, "eligible") == 1845.0  # K82 = 82 x 22.50
    assert reason_of(response, 2) is None and adjudication(response, 2, "eligible") == 675.0
    assert reason_of(response, 3) is None and adjudication(response, 3, "eligible") == 2025.0


async def test_an_act_without_its_key_letter_is_not_adjudicable(client: httpx.AsyncClient) -> None:
    refs = await load_demo(client)
    item = act("K", "1845.00", coefficient="82")
    item["productOrService"]["coding"] = [{"system": ACTS, "code": "J203"}]
    answer = await client.post(SUBMIT, json=claim(refs, FATIMA, [item], provider=DR_ELIDRISSI))
    assert answer.status_code == 422
    issue = answer.json()["issue"][0]
    assert issue["expression"] == ["Claim.item[0].productOrService"]
    assert "lettre clé NGAP manquante" in issue["diagnostics"]
