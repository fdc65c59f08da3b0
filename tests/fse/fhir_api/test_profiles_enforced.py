"""Every write meets the AMO guide: a broken rule is a 422 naming the element, nothing stored."""

from __future__ import annotations

import httpx

from fse.errors import ErrorCode
from tests.builders import FHIR_JSON, FSE, claim, create, patient
from tests.conftest import Platform
from tests.fse.fhir_api.test_errors import assert_outcome

PATIENT_PROFILE = "https://fse.cnss.ma/fhir/StructureDefinition/amo-patient|1.0.0"


async def test_create_breaking_the_profile_is_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    before = await platform.row_counts()
    body = {k: v for k, v in patient().items() if k != "birthDate"}
    body["identifier"][1]["value"] = "be123456"
    response = await client.post("/fhir/Patient", json=body, headers=FHIR_JSON)
    assert_outcome(response, 422, ErrorCode.PROFILE_VIOLATION, "Patient.birthDate")
    issues = response.json()["issue"]
    assert {(i["expression"][0], i["code"]) for i in issues} == {
        ("Patient.birthDate", "required"),
        ("Patient.identifier[1].value", "value"),
    }
    assert "CIN" in issues[1]["diagnostics"]
    assert await platform.row_counts() == before


async def test_stored_resources_declare_their_profile(client: httpx.AsyncClient) -> None:
    created = await create(client, patient())
    assert created["meta"]["profile"] == [PATIENT_PROFILE]
    read = (await client.get(f"/fhir/Patient/{created['id']}")).json()
    assert read["meta"]["profile"] == [PATIENT_PROFILE]


async def test_update_breaking_the_profile_keeps_the_current_version(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    created = await create(client, patient())
    before = await platform.row_counts()
    created["name"] = [{"given": ["Fatima"]}]
    response = await client.put(f"/fhir/Patient/{created['id']}", json=created, headers=FHIR_JSON)
    assert_outcome(response, 422, ErrorCode.PROFILE_VIOLATION, "Patient.name[0].family")
    assert await platform.row_counts() == before


async def test_claim_number_must_carry_valid_check_characters(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    owner = await create(client, patient())
    body = claim(f"Patient/{owner['id']}")
    body["identifier"] = [{"system": FSE, "value": "FSE-2026-000000001-00"}]
    before = await platform.row_counts()
    response = await client.post("/fhir/Claim", json=body, headers=FHIR_JSON)
    assert_outcome(response, 422, ErrorCode.PROFILE_VIOLATION, "Claim.identifier[0].value")
    assert await platform.row_counts() == before


async def test_transaction_names_the_entry_that_breaks_the_profile(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    before = await platform.row_counts()
    bad = patient(immat="222222222", cin="A2", gender=None)
    bad.pop("gender")
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {"resource": bad, "request": {"method": "POST", "url": "Patient"}},
        ],
    }
    response = await client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert_outcome(response, 422, ErrorCode.PROFILE_VIOLATION, "Bundle.entry[1].resource.gender")
    assert await platform.row_counts() == before


async def test_validate_operation_reports_profile_problems(client: httpx.AsyncClient) -> None:
    body = {k: v for k, v in patient().items() if k != "gender"}
    response = await client.post("/fhir/Patient/$validate", json=body, headers=FHIR_JSON)
    assert response.status_code == 200
    assert [(i["severity"], i["expression"]) for i in response.json()["issue"]] == [
        ("error", ["Patient.gender"])
    ]
