"""Claim/$submit reads each amount exactly as the client wrote it and answers with amounts to the
centime; what is not a number is a 4xx OperationOutcome naming the element, never a 500."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from fse import fhir_json
from tests.builders import FHIR_JSON
from tests.conftest import Platform
from tests.reimbursement.demo import FATIMA, act, claim, load_demo

SUBMIT = "/fhir/Claim/$submit"


def sheet_of(refs: dict[str, str], *amounts: Decimal) -> dict[str, Any]:
    sheet = claim(refs, FATIMA, [act("C", "1.00") for _ in amounts])
    for item, amount in zip(sheet["item"], amounts, strict=True):
        item["net"]["value"] = amount
    sheet["total"]["value"] = sum(amounts, Decimal(0))
    return sheet


def amounts_of(response: dict[str, Any], category: str) -> list[str]:
    return [
        str(entry.get("amount", {}).get("value", entry.get("value")))
        for item in response["item"]
        for entry in item["adjudication"]
        if entry["category"]["coding"][0]["code"] == category
    ]


@pytest.mark.parametrize(
    ("written", "answered"),
    [("150.00", "150.00"), ("150.1", "150.10"), ("150", "150.00"), ("150.100", "150.10")],
)
async def test_an_amount_is_read_exactly_as_written_and_answered_to_the_centime(
    client: httpx.AsyncClient, written: str, answered: str
) -> None:
    refs = await load_demo(client)
    sheet = sheet_of(refs, Decimal(written))
    body = fhir_json.dumps(sheet)
    assert f'"net":{{"value":{written},'.encode() in body
    answer = await client.post(SUBMIT, content=body, headers=FHIR_JSON)
    assert answer.status_code == 200, answer.text
    response = fhir_json.loads(answer.content)
    assert amounts_of(response, "submitted") == [answered]
    assert amounts_of(response, "eligpercent") == ["70.00"]
    # 70 % x min(billed, TNR C 80) = 56.00
    assert amounts_of(response, "benefit") == ["56.00"]
    assert [str(t["amount"]["value"]) for t in response["total"]] == [
        answered,
        "80.00",
        "56.00",
        str(Decimal(answered) - 56),
    ]
    found = await client.get("/fhir/Claim", params={"identifier": sheet["identifier"][0]["value"]})
    stored = fhir_json.loads(found.content)["entry"][0]["resource"]
    assert str(stored["item"][0]["net"]["value"]) == written  # the client's digits, kept


@pytest.mark.parametrize(
    ("value", "status", "code"),
    [
        (b'"150.00"', 422, "FSE-0026"),  # a string is not a FHIR decimal
        (b"150.005", 422, "FSE-0026"),  # under the centime: refused, never rounded
        (b"-1.00", 422, "FSE-0026"),
        (b"1000000000.00", 422, "FSE-0035"),  # over what the money columns hold
        (b"true", 422, "FSE-0026"),  # nor is a boolean
        (b"NaN", 400, "FSE-0001"),  # not JSON
        (b"1e999", 400, "FSE-0001"),  # beyond a double
    ],
)
async def test_an_amount_that_is_not_a_settleable_number_is_a_4xx_and_stores_nothing(
    client: httpx.AsyncClient, platform: Platform, value: bytes, status: int, code: str
) -> None:
    refs = await load_demo(client)
    body = fhir_json.dumps(sheet_of(refs, Decimal("123.45")))
    body = body.replace(b'"net":{"value":123.45,', b'"net":{"value":' + value + b",")
    assert value in body
    before = await platform.row_counts()
    answer = await client.post(SUBMIT, content=body, headers=FHIR_JSON)
    assert answer.status_code == status, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert code in [i["details"]["coding"][0]["code"] for i in outcome["issue"]], outcome
    if status == 422:
        paths = [e for i in outcome["issue"] for e in i.get("expression", [])]
        assert any(p.startswith("Claim.item[0].net") for p in paths), paths
    assert await platform.row_counts() == before
