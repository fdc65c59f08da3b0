"""Every REST write path refuses care sheet dates in the future (422 FSE-0034), storing nothing:
create, update, transaction entries (paths inside the Bundle) and batch entries."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fse.errors import ErrorCode, FhirError
from tests.builders import FHIR_JSON, IMMAT, INPE, NGAP, claim, create, patient
from tests.conftest import Platform
from tests.fse.fhir_api.test_errors import assert_outcome
from tests.fse.fhir_api.test_transaction import PATIENT_URN, bundle, post

GTIN = "urn:oid:1.3.160"
# By identifier: batch and transaction entries may not reference resources that are not stored.
PATIENT = {"identifier": {"system": IMMAT, "value": "123456789"}}
DOCTOR = {"identifier": {"system": INPE, "value": "100000019"}}


def encounter(start: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": PATIENT,
        "participant": [{"individual": DOCTOR}],
        "period": {"start": start},
    }


def act(when: str) -> dict[str, Any]:
    return {
        "resourceType": "ChargeItem",
        "status": "billable",
        "code": {"coding": [{"system": NGAP, "code": "C"}]},
        "subject": PATIENT,
        "occurrenceDateTime": when,
        "quantity": {"value": 1},
        "performer": [{"actor": DOCTOR}],
    }


def prescription(authored: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": GTIN, "code": "6118000190219"}]},
        "subject": PATIENT,
        "authoredOn": authored,
        "requester": DOCTOR,
        "dosageInstruction": [{"text": "1 comprimé 3 fois par jour"}],
        # Its validity runs into the future on purpose: not a date of care.
        "dispenseRequest": {"validityPeriod": {"start": "2026-11-20", "end": "2099-12-31"}},
    }


def lab_order(authored: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"coding": [{"system": NGAP, "code": "B"}], "text": "Glycémie à jeun"},
        "subject": PATIENT,
        "authoredOn": authored,
        "requester": DOCTOR,
        "occurrenceDateTime": "2099-01-01",  # when to do it: may be later
    }


def dated_claim(day: str) -> dict[str, Any]:
    sheet = claim("Patient/p1")
    sheet["item"][0]["servicedDate"] = day
    return sheet


CASES = [
    (encounter, "Encounter.period.start"),
    (act, "ChargeItem.occurrenceDateTime"),
    (prescription, "MedicationRequest.authoredOn"),
    (lab_order, "ServiceRequest.authoredOn"),
    (dated_claim, "Claim.item[0].servicedDate"),
]


@pytest.mark.parametrize(("build", "path"), CASES)
async def test_rest_create_refuses_a_future_date_and_accepts_a_past_one(
    client: httpx.AsyncClient, platform: Platform, build: Any, path: str
) -> None:
    before = await platform.row_counts()
    refused = await client.post(f"/fhir/{path.split('.')[0]}", json=build("2030-01-01"))
    assert_outcome(refused, 422, ErrorCode.DATE_IN_FUTURE, path)
    assert await platform.row_counts() == before
    await create(client, build("2026-11-20"))


async def test_an_update_refuses_a_future_date(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """REST updates of care-sheet resources are reserved (405); the platform's own flows update
    them through the same service, which refuses a future date all the same."""
    stored = await create(client, prescription("2026-11-20T09:45:00+01:00"))
    stored["authoredOn"] = "2030-01-01T09:45:00+01:00"
    before = await platform.row_counts()
    answer = await client.put(f"/fhir/MedicationRequest/{stored['id']}", json=stored)
    assert_outcome(answer, 405, ErrorCode.METHOD_NOT_ALLOWED, "MedicationRequest")
    fhir = platform.app.state.fhir
    with pytest.raises(FhirError) as refused:
        async with fhir.store.transaction() as conn:
            await fhir.update(conn, "MedicationRequest", stored["id"], stored, None)
    assert refused.value.status == 422 and refused.value.code == ErrorCode.DATE_IN_FUTURE
    assert refused.value.issues[0].expression == ("MedicationRequest.authoredOn",)
    assert await platform.row_counts() == before
    current = (await client.get(f"/fhir/MedicationRequest/{stored['id']}")).json()
    assert current["authoredOn"] == "2026-11-20T09:45:00+01:00"


async def test_a_dispense_is_not_written_through_rest_whatever_its_date(
    client: httpx.AsyncClient,
) -> None:
    dispense = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "medicationCodeableConcept": {"coding": [{"system": GTIN, "code": "6118000190219"}]},
        "subject": PATIENT,
        "whenHandedOver": "2030-01-01T10:00:00+01:00",
    }
    answer = await client.post("/fhir/MedicationDispense", json=dispense)
    assert_outcome(answer, 405, ErrorCode.METHOD_NOT_ALLOWED)  # tests/pharmacy: the dispense


async def test_a_transaction_entry_in_the_future_rolls_back_everything(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    before = await platform.row_counts()
    future = claim(PATIENT_URN)
    future["item"][0]["servicedDate"] = "2030-01-01"
    future["created"] = "9999-12-31"
    response = await client.post(
        "/fhir",
        headers=FHIR_JSON,
        json=bundle("transaction", post(future), post(patient(), PATIENT_URN)),
    )
    assert_outcome(
        response, 422, ErrorCode.DATE_IN_FUTURE, "Bundle.entry[0].resource.item[0].servicedDate"
    )
    assert [e for i in response.json()["issue"] for e in i["expression"]] == [
        "Bundle.entry[0].resource.created",
        "Bundle.entry[0].resource.item[0].servicedDate",
    ]
    assert await platform.row_counts() == before


async def test_a_batch_entry_in_the_future_fails_alone(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/fhir",
        headers=FHIR_JSON,
        json=bundle("batch", post(encounter("2030-01-01")), post(encounter("2026-11-20"))),
    )
    assert response.status_code == 200, response.text
    first, second = response.json()["entry"]
    assert first["response"]["status"].startswith("422")
    outcome = first["response"]["outcome"]
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == ErrorCode.DATE_IN_FUTURE.value
    assert outcome["issue"][0]["expression"] == ["Encounter.period.start"]
    assert second["response"]["status"] == "201 Created"
    stored = (await client.get("/fhir/Encounter")).json()["entry"]
    assert [e["resource"]["period"]["start"] for e in stored] == ["2026-11-20"]
