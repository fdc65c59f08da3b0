"""The demo cast loaded through the API, and care sheets built on it."""

from __future__ import annotations

from itertools import count
from typing import Any

import httpx

from fhir_profiles.identifiers import care_sheet_number
from fse.seed import demo_bundle

NGAP = "https://fse.cnss.ma/fhir/CodeSystem/ngap"
GTIN = "urn:oid:1.3.160"
FSE = "https://fse.cnss.ma/fhir/sid/fse"
COEFFICIENT = "https://fse.cnss.ma/fhir/StructureDefinition/ngap-coefficient"
ITEM_REQUEST = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Claim.item.request"
ELIGIBILITY = "https://fse.cnss.ma/fhir/StructureDefinition/eligibility-response"

# Demo resources by the last digits of their fullUrl (fse/seed/demo-bundle.json).
CNSS, PHARMACY, LAB = "0001", "0002", "0003"
PHARMACY_2 = "0004"
PHARMACIST, PHARMACIST_2 = "0012", "0014"
DR_BENALI, DR_ELIDRISSI = "0010", "0011"
FATIMA, AMINE, SARA, OMAR = "0100", "0102", "0103", "0104"
TAZI, BENNANI, OUAZZANI, CHRAIBI, FASSI = "0110", "0120", "0130", "0140", "0150"
LATIFA, YASSINE = "0161", "0162"
COVERAGE = {
    FATIMA: "0200",
    AMINE: "0202",
    SARA: "0203",
    OMAR: "0204",
    TAZI: "0211",
    BENNANI: "0220",
    OUAZZANI: "0230",
    CHRAIBI: "0240",
    FASSI: "0250",
    LATIFA: "0261",
    YASSINE: "0262",
}
FASSI_ALD = "0251"

_numbers = count(500)


async def load_demo(client: httpx.AsyncClient) -> dict[str, str]:
    """POST the demo transaction; returns ``Type/id`` by fullUrl suffix."""
    bundle = demo_bundle()
    response = await client.post("/fhir", json=bundle)
    assert response.status_code == 200, response.text
    refs = {}
    for entry, answer in zip(bundle["entry"], response.json()["entry"], strict=True):
        location = answer["response"]["location"].split("/_history")[0]
        refs[entry["fullUrl"][-4:]] = "/".join(location.split("/")[-2:])
    return refs


def next_number() -> str:
    return care_sheet_number(2026, next(_numbers))


def act(
    code: str, billed: str, day: str = "2026-11-20", coefficient: str | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "productOrService": {"coding": [{"system": NGAP, "code": code}]},
        "servicedDate": day,
        "net": {"value": float(billed), "currency": "MAD"},
    }
    if coefficient is not None:
        item["extension"] = [{"url": COEFFICIENT, "valueDecimal": float(coefficient)}]
    return item


def medicine(
    ean: str, billed: str, request: str, boxes: int = 1, day: str = "2026-11-20"
) -> dict[str, Any]:
    return {
        "extension": [{"url": ITEM_REQUEST, "valueReference": {"reference": request}}],
        "productOrService": {"coding": [{"system": GTIN, "code": ean}]},
        "servicedDate": day,
        "quantity": {"value": boxes},
        "net": {"value": float(billed), "currency": "MAD"},
    }


def claim(
    refs: dict[str, str],
    patient: str,
    items: list[dict[str, Any]],
    provider: str = DR_BENALI,
    number: str | None = None,
    kind: str = "professional",
    **extra: Any,
) -> dict[str, Any]:
    for sequence, item in enumerate(items, 1):
        item["sequence"] = sequence
    return {
        "resourceType": "Claim",
        "identifier": [{"system": FSE, "value": number or next_number()}],
        "status": "active",
        "use": "claim",
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": kind}]
        },
        "patient": {"reference": refs[patient]},
        "created": "2026-11-20T10:00:00+01:00",
        "provider": {"reference": refs[provider]},
        "insurer": {"reference": refs[CNSS]},
        "priority": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/processpriority",
                    "code": "normal",
                }
            ]
        },
        "insurance": [
            {"sequence": 1, "focal": True, "coverage": {"reference": refs[COVERAGE[patient]]}}
        ],
        "item": items,
        "total": {
            "value": sum(i["net"]["value"] for i in items),
            "currency": "MAD",
        },
        **extra,
    }


def adjudication(response: dict[str, Any], item: int, category: str) -> float:
    for entry in response["item"][item]["adjudication"]:
        if entry["category"]["coding"][0]["code"] == category:
            return entry.get("amount", {}).get("value", entry.get("value"))
    raise KeyError(category)


def total(response: dict[str, Any], category: str) -> float:
    return next(
        t["amount"]["value"]
        for t in response["total"]
        if t["category"]["coding"][0]["code"] == category
    )
