"""The CapabilityStatement lists exactly what works, and nothing that does not."""

from __future__ import annotations

import httpx
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from fse.errors import ErrorCode
from fse.store.search_params import SUPPORTED_TYPES
from tests.builders import FHIR_JSON, patient
from tests.conftest import Platform
from tests.fse.fhir_api.test_errors import assert_outcome

SAMPLE = {
    "token": "x",
    "string": "x",
    "date": "ge2026-01-01",
    "reference": "Patient/x",
    "quantity": "gt1",
    "number": "1",
}
IN_SCOPE = {
    "Patient",
    "Coverage",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Encounter",
    "ChargeItem",
    "MedicationRequest",
    "ServiceRequest",
    "MedicationDispense",
    "Claim",
    "ClaimResponse",
    "PaymentReconciliation",
    "ExplanationOfBenefit",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "Provenance",
    "AuditEvent",
    "Condition",  # ALD / ALC recognised by CNSS (issue 3)
    # the AMO implementation guide, served (issue 3)
    "StructureDefinition",
    "CodeSystem",
    "ValueSet",
    "NamingSystem",
}


async def test_metadata_is_a_valid_capability_statement_of_the_scope(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/fhir/metadata")
    assert response.status_code == 200
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    resources = statement["rest"][0]["resource"]
    assert {r["type"] for r in resources} == IN_SCOPE | {"Subscription"}
    assert set(SUPPORTED_TYPES) == IN_SCOPE  # Subscription is served by its own routes (issue 7)
    (subscription,) = [r for r in resources if r["type"] == "Subscription"]
    assert "ClaimResponse?outcome|status=" in subscription["documentation"]


async def test_every_advertised_search_parameter_and_include_is_accepted_strictly(
    client: httpx.AsyncClient,
) -> None:
    statement = (await client.get("/fhir/metadata")).json()
    for resource in statement["rest"][0]["resource"]:
        for param in resource.get("searchParam", []):
            response = await client.get(
                f"/fhir/{resource['type']}",
                params={param["name"]: SAMPLE[param["type"]]},
                headers={"Prefer": "handling=strict"},
            )
            assert response.status_code == 200, (resource["type"], param, response.text)
        for include in resource.get("searchInclude", []):
            response = await client.get(f"/fhir/{resource['type']}", params={"_include": include})
            assert response.status_code == 200, (include, response.text)
        for revinclude in resource.get("searchRevInclude", []):
            response = await client.get(
                f"/fhir/{resource['type']}", params={"_revinclude": revinclude}
            )
            assert response.status_code == 200, (revinclude, response.text)


async def test_advertised_operations_exist_and_others_do_not(client: httpx.AsyncClient) -> None:
    statement = (await client.get("/fhir/metadata")).json()
    patient_entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert [op["name"] for op in patient_entry["operation"]] == ["export", "validate"]
    response = await client.post("/fhir/Patient/$everything", json={}, headers=FHIR_JSON)
    assert_outcome(response, 404, ErrorCode.UNKNOWN_OPERATION)


async def test_validate_reports_problems_without_storing(
    client: httpx.AsyncClient, platform
) -> None:
    before = await platform.row_counts()
    good = await client.post("/fhir/Patient/$validate", json=patient(), headers=FHIR_JSON)
    assert good.status_code == 200
    assert [i["severity"] for i in good.json()["issue"]] == ["information"]
    bad = await client.post(
        "/fhir/Patient/$validate", json={**patient(), "birthDate": "x"}, headers=FHIR_JSON
    )
    assert bad.status_code == 200
    issue = bad.json()["issue"][0]
    assert issue["severity"] == "error" and issue["expression"] == ["Patient.birthDate"]
    wrapped = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": patient()}],
    }
    assert (
        await client.post("/fhir/Patient/$validate", json=wrapped, headers=FHIR_JSON)
    ).status_code == 200
    assert await platform.row_counts() == before


async def test_capability_statement_is_served_from_the_runtime_cache(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    cache = platform.app.state.runtime.cache
    await cache.delete("capability:http://test/fhir")
    first = await client.get("/fhir/metadata")
    assert await cache.get("capability:http://test/fhir") == first.content
    await cache.set("capability:http://test/fhir", b'{"resourceType":"CapabilityStatement"}', 60)
    assert (await client.get("/fhir/metadata")).json() == {"resourceType": "CapabilityStatement"}
    await cache.delete("capability:http://test/fhir")
