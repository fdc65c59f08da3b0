"""The FHIR resources the benchmarks send, built in one place (one Claim builder for every
phase: the FHIR API phases, the access checks and ``Claim/$submit``)."""

from __future__ import annotations

from typing import Any

import orjson

SID = "https://fse.cnss.ma/fhir/sid"
NGAP = "https://fse.cnss.ma/fhir/CodeSystem/ngap"
COEFFICIENT = "https://fse.cnss.ma/fhir/StructureDefinition/ngap-coefficient"
BENCH_DOCTOR = "Practitioner/bench"
"""The provider of the API phases' claims, and the Practitioner of their signed-in doctor."""


def act(
    sequence: int,
    code: str,
    value: float,
    day: str | None = None,
    coefficient: int | None = None,
) -> dict[str, Any]:
    """A Claim item: an NGAP act at ``value`` MAD, on ``day``, with its coefficient if any."""
    item: dict[str, Any] = {
        "sequence": sequence,
        "productOrService": {"coding": [{"system": NGAP, "code": code}]},
        "net": {"value": value, "currency": "MAD"},
    }
    if coefficient is not None:
        item["extension"] = [{"url": COEFFICIENT, "valueDecimal": coefficient}]
    if day is not None:
        item["servicedDate"] = day
    return item


def claim(
    number: str,
    patient: str,
    provider: str,
    coverage: str,
    created: str,
    items: list[dict[str, Any]],
) -> bytes:
    """A professional Claim (care sheet ``number``) of these items, its total their sum."""
    return orjson.dumps(
        {
            "resourceType": "Claim",
            "identifier": [{"system": f"{SID}/fse", "value": number}],
            "status": "active",
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                        "code": "professional",
                    }
                ]
            },
            "use": "claim",
            "patient": {"reference": patient},
            "created": created,
            "provider": {"reference": provider},
            "priority": {"coding": [{"code": "normal"}]},
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": coverage}}],
            "item": items,
            "total": {"value": sum(i["net"]["value"] for i in items), "currency": "MAD"},
        }
    )


def doctors_claim(patient_id: str, number: str) -> bytes:
    """The bench doctor's care sheet of three acts (C, K, B: 720 MAD), as the API phases and
    the access checks create it."""
    acts = [act(n, code, value) for n, (code, value) in enumerate(ACTS, start=1)]
    return claim(
        number,
        f"Patient/{patient_id}",
        BENCH_DOCTOR,
        "Coverage/bench",
        "2026-11-20T09:50:00+01:00",
        acts,
    )


ACTS = (("C", 150), ("K", 450), ("B", 120))


def transaction(entries: list[dict[str, Any]]) -> bytes:
    """A transaction Bundle of ``entries``."""
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def located(entry: dict[str, Any]) -> tuple[str, str]:
    """(type, id) from a transaction-response entry's location (absolute or relative)."""
    rtype, rid = entry["response"]["location"].split("/_history")[0].split("/")[-2:]
    return rtype, rid
