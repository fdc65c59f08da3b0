"""The doctor's sheet and the pharmacist's dispense leave their amounts as JSON numbers to the
centime (``150.00``, never a float's ``150.0``), in what is stored and served.

The answers are read with ``fse.fhir_json.loads``: a Decimal keeps the digits of the text, so
``str`` gives back each number as it was written (PostgreSQL's JSONB keeps them too).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from fse import fhir_json
from pharmacy.numbers import claim_number
from prescriber.verify import verify_sheet
from tests.conftest import Platform
from tests.pharmacy.helpers import counter, fatima_sheet, line, order

MONEY = ("net", "amount", "priceOverride", "total", "paymentAmount")


async def served(client: httpx.AsyncClient, url: str, **params: str) -> Any:
    response = await client.get(url, params=params)
    assert response.status_code == 200, response.text
    return fhir_json.loads(response.content)


def written(node: Any, keys: tuple[str, ...] = MONEY) -> list[str]:
    """The value of every Money (``keys``) under ``node``, as written in the JSON text."""
    found: list[str] = []
    if isinstance(node, list):
        for child in node:
            found += written(child, keys)
    elif isinstance(node, dict):
        for key, child in node.items():
            if key in keys and isinstance(child, dict) and "value" in child:
                assert isinstance(child["value"], Decimal), (key, child)  # a number, a fraction
                found.append(str(child["value"]))
            found += written(child, keys)
    return found


def eligpercent(response: dict[str, Any]) -> list[str]:
    return [
        str(a["value"])
        for item in response["item"]
        for a in item["adjudication"]
        if a["category"]["coding"][0]["code"] == "eligpercent"
    ]


async def test_the_doctor_s_sheet_and_its_answer_carry_amounts_to_the_centime(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    _, sheet = await fatima_sheet(platform, client)  # a C billed 150 (typed "150")
    claim = await served(client, f"/fhir/Claim/{sheet.claim_id}")
    assert written(claim) == ["150.00", "150.00"]  # the line's net, the total
    bundle = await served(client, "/fhir/ClaimResponse", request=f"Claim/{sheet.claim_id}")
    answer = bundle["entry"][0]["resource"]
    # 70 % x min(150, TNR C 80) = 56.00; the insured keeps 94.00.
    assert written(answer["item"]) == ["150.00", "80.00", "56.00", "94.00"]
    assert written(answer["total"]) == ["150.00", "80.00", "56.00", "94.00"]
    assert eligpercent(answer) == ["70.00"]
    charged = await served(client, "/fhir/ChargeItem", subject=claim["patient"]["reference"])
    assert written(charged) == ["150.00"]  # the act's priceOverride
    verdict = await verify_sheet(platform.app.state.fhir, sheet.number)
    assert verdict.valid, verdict.message


async def test_a_dispense_s_claim_and_answer_carry_amounts_to_the_centime(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    ciclo = line(await desk.lines(sheet.number), "CICLOVIRAL")
    done = await desk.dispense(ciclo.patient_id, order(ciclo, 1, price="209"))
    number = f"https://fse.cnss.ma/fhir/sid/fse|{claim_number(done.number)}"
    claim = (await served(client, "/fhir/Claim", identifier=number))["entry"][0]["resource"]
    assert written(claim) == ["209.00", "209.00"]  # the line's net, the total
    assert claim["item"][0]["quantity"] == {"value": 1}  # boxes are whole numbers
    bundle = await served(client, "/fhir/ClaimResponse", request=f"Claim/{claim['id']}")
    answer = bundle["entry"][0]["resource"]
    # Base 209.00 (PBR) at 70 % = 146.30 from CNSS, 62.70 for the insured.
    assert written(answer["item"]) == ["209.00", "209.00", "146.30", "62.70"]
    assert eligpercent(answer) == ["70.00"]
    request = await served(client, f"/fhir/MedicationRequest/{ciclo.request_id}")
    assert request["extension"][-1]["valueQuantity"] == {"value": 1, "unit": "boîte"}
