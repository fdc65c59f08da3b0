"""transaction Bundles are atomic; batch entries succeed or fail one by one."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fse.errors import ErrorCode
from tests.builders import FHIR_JSON, IMMAT, INPE, claim, create, patient, practitioner
from tests.conftest import Platform
from tests.fse.fhir_api.test_errors import assert_outcome


def bundle(kind: str, *entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict, full_url: str | None = None, if_none_exist: str | None = None) -> dict:
    request = {"method": "POST", "url": resource["resourceType"]}
    if if_none_exist:
        request["ifNoneExist"] = if_none_exist
    entry = {"resource": resource, "request": request}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


PATIENT_URN = "urn:uuid:6f1c3e0a-0000-4000-8000-000000000001"


def sheet(patient_ref: str) -> dict[str, Any]:
    """A claim whose doctor and coverage are named by identifier: nothing else to store."""
    written = claim(patient_ref)
    written["provider"] = {"identifier": {"system": INPE, "value": "100000019"}}
    written["insurance"][0]["coverage"] = {"identifier": {"value": "COV-1"}}
    return written


async def test_transaction_resolves_urn_references_and_commits_all(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/fhir",
        headers=FHIR_JSON,
        json=bundle("transaction", post(sheet(PATIENT_URN)), post(patient(), PATIENT_URN)),
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    assert [e["response"]["status"] for e in result["entry"]] == ["201 Created", "201 Created"]
    claim_stored, patient_stored = (e["resource"] for e in result["entry"])
    assert claim_stored["patient"]["reference"] == f"Patient/{patient_stored['id']}"
    found = (
        await client.get("/fhir/Claim", params={"patient.identifier": f"{IMMAT}|123456789"})
    ).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [claim_stored["id"]]


async def test_failing_entry_rolls_back_everything_and_names_the_entry(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    before = await platform.row_counts()
    broken = claim(PATIENT_URN)
    broken["item"][0]["sequence"] = "first"
    response = await client.post(
        "/fhir",
        headers=FHIR_JSON,
        json=bundle("transaction", post(patient(), PATIENT_URN), post(broken)),
    )
    assert_outcome(
        response, 422, ErrorCode.INVALID_RESOURCE, "Bundle.entry[1].resource.item[0].sequence"
    )
    assert await platform.row_counts() == before


async def test_transaction_conflict_rolls_back_earlier_writes(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    existing = await create(client, patient(immat="111111111", cin="A1"))
    before = await platform.row_counts()
    existing["gender"] = "male"
    response = await client.post(
        "/fhir",
        headers=FHIR_JSON,
        json=bundle(
            "transaction",
            {
                "resource": existing,
                "request": {"method": "PUT", "url": f"Patient/{existing['id']}"},
            },
            post(patient(immat="111111111", cin="A2")),
        ),
    )
    assert_outcome(
        response, 409, ErrorCode.DUPLICATE_IDENTIFIER, "Bundle.entry[1].resource.identifier[0]"
    )
    assert await platform.row_counts() == before
    assert (await client.get(f"/fhir/Patient/{existing['id']}")).json()["gender"] == "female"


async def test_conditional_create_in_transaction_reuses_the_existing_resource(
    client: httpx.AsyncClient,
) -> None:
    existing = await create(client, patient())
    response = await client.post(
        "/fhir",
        headers=FHIR_JSON,
        json=bundle(
            "transaction",
            post(patient(), PATIENT_URN, if_none_exist=f"identifier={IMMAT}|123456789"),
            post(sheet(PATIENT_URN)),
        ),
    )
    result = response.json()
    assert [e["response"]["status"] for e in result["entry"]] == ["200 OK", "201 Created"]
    assert result["entry"][1]["resource"]["patient"]["reference"] == f"Patient/{existing['id']}"


async def test_transaction_with_update_delete_and_read(client: httpx.AsyncClient) -> None:
    keep = await create(client, patient(immat="111111111", cin="A1"))
    drop = await create(client, patient(immat="222222222", cin="A2"))
    keep["gender"] = "male"
    response = await client.post(
        "/fhir",
        headers=FHIR_JSON,
        json=bundle(
            "transaction",
            {"request": {"method": "GET", "url": f"Patient/{keep['id']}"}},
            {
                "resource": keep,
                "request": {"method": "PUT", "url": f"Patient/{keep['id']}", "ifMatch": 'W/"1"'},
            },
            {"request": {"method": "DELETE", "url": f"Patient/{drop['id']}"}},
            {"request": {"method": "GET", "url": "Patient?identifier=222222222"}},
        ),
    )
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == [
        "200 OK",
        "200 OK",
        "204 No Content",
        "200 OK",
    ]
    assert entries[0]["resource"]["gender"] == "male"  # GET runs after PUT
    assert entries[3]["resource"]["type"] == "searchset" and "entry" not in entries[3]["resource"]
    assert (await client.get(f"/fhir/Patient/{drop['id']}")).status_code == 410


async def test_stale_if_match_in_transaction_is_412(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    existing = await create(client, patient())
    before = await platform.row_counts()
    response = await client.post(
        "/fhir",
        headers=FHIR_JSON,
        json=bundle(
            "transaction",
            {
                "resource": existing,
                "request": {
                    "method": "PUT",
                    "url": f"Patient/{existing['id']}",
                    "ifMatch": 'W/"7"',
                },
            },
        ),
    )
    assert_outcome(response, 412, ErrorCode.VERSION_CONFLICT)
    assert await platform.row_counts() == before


async def test_batch_entries_fail_independently(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    response = await client.post(
        "/fhir",
        headers=FHIR_JSON,
        json=bundle(
            "batch",
            post(patient(immat="111111111", cin="A1")),
            post({"resourceType": "Patient", "birthDate": "never"}),
            {"request": {"method": "GET", "url": "Patient/missing"}},
            post(patient(immat="222222222", cin="A2")),
        ),
    )
    assert response.status_code == 200
    result = response.json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "422 Unprocessable Entity", "404 Not Found", "201 Created"]
    outcome = result["entry"][1]["response"]["outcome"]
    assert outcome["issue"][0]["expression"] == ["Patient.birthDate"]
    assert (await platform.row_counts())["resources"] == 2


async def test_bundle_errors(client: httpx.AsyncClient, platform: Platform) -> None:
    before = await platform.row_counts()
    too_many = bundle(
        "transaction",
        *[
            post(patient(immat=f"{n:09d}", cin=f"A{n}"))
            for n in range(platform.settings.max_bundle_entries + 1)
        ],
    )
    assert_outcome(
        await client.post("/fhir", json=too_many, headers=FHIR_JSON),
        413,
        ErrorCode.BUNDLE_TOO_LARGE,
    )
    assert_outcome(
        await client.post("/fhir", json=bundle("collection"), headers=FHIR_JSON),
        400,
        ErrorCode.INVALID_BUNDLE,
        "Bundle.type",
    )
    assert_outcome(
        await client.post("/fhir", json=patient(), headers=FHIR_JSON),
        400,
        ErrorCode.WRONG_RESOURCE_TYPE,
    )
    no_request = bundle("transaction", {"resource": patient()})
    assert_outcome(
        await client.post("/fhir", json=no_request, headers=FHIR_JSON),
        400,
        ErrorCode.INVALID_BUNDLE,
        "Bundle.entry[0].request",
    )
    bad_type = bundle("transaction", post({"resourceType": "Basic"}))
    assert_outcome(
        await client.post("/fhir", json=bad_type, headers=FHIR_JSON),
        404,
        ErrorCode.UNKNOWN_RESOURCE_TYPE,
    )
    assert await platform.row_counts() == before


DOCTOR_URN = "urn:uuid:6f1c3e0a-0000-4000-8000-000000000002"


def visit(subject: str, doctor: str, **extra: Any) -> dict[str, Any]:
    """An AMO Encounter: the insured seen (subject) and the doctor (participant)."""
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": subject},
        "participant": [{"individual": {"reference": doctor}}],
        "period": {"start": "2026-11-20"},
        **extra,
    }


async def gone_patient(client: httpx.AsyncClient) -> str:
    deleted = await create(client, patient(immat="777777777", cin="G7"))
    assert (await client.delete(f"/fhir/Patient/{deleted['id']}")).status_code in (200, 204)
    return f"Patient/{deleted['id']}"


@pytest.mark.parametrize(
    ("subject", "doctor", "path"),
    [
        (  # a urn:uuid no entry carries as its fullUrl
            "urn:uuid:6f1c3e0a-0000-4000-8000-0000000000ff",
            DOCTOR_URN,
            "Bundle.entry[2].resource.subject.reference",
        ),
        (  # a local reference to a resource neither stored nor in the Bundle
            PATIENT_URN,
            "Practitioner/doesnotexist",
            "Bundle.entry[2].resource.participant[0].individual.reference",
        ),
        (  # the same, as an absolute URL on this server
            "http://test/fhir/Patient/doesnotexist",
            DOCTOR_URN,
            "Bundle.entry[2].resource.subject.reference",
        ),
        (  # a resource that was deleted
            "gone",
            DOCTOR_URN,
            "Bundle.entry[2].resource.subject.reference",
        ),
        (  # a conditional reference: not resolved here, so not stored as if it were
            f"Patient?identifier={IMMAT}|123456789",
            DOCTOR_URN,
            "Bundle.entry[2].resource.subject.reference",
        ),
    ],
    ids=["dangling-urn", "unknown-local", "unknown-absolute", "deleted", "conditional"],
)
async def test_transaction_refuses_a_reference_to_nothing(
    client: httpx.AsyncClient, platform: Platform, subject: str, doctor: str, path: str
) -> None:
    if subject == "gone":
        subject = await gone_patient(client)
    before = await platform.row_counts()
    response = await client.post(
        "/fhir",
        headers=FHIR_JSON,
        json=bundle(
            "transaction",
            post(practitioner(), DOCTOR_URN),
            post(patient(), PATIENT_URN),
            post(visit(subject, doctor)),
        ),
    )
    assert_outcome(response, 422, ErrorCode.DANGLING_REFERENCE, path)
    assert [e for i in response.json()["issue"] for e in i["expression"]] == [path]
    assert await platform.row_counts() == before


async def test_references_that_are_not_local_are_not_dangling(
    client: httpx.AsyncClient,
) -> None:
    """Stored or in the Bundle (relative, versioned or absolute), another server's URL,
    an identifier alone, a contained resource: all resolve or are not ours to resolve."""
    doctor = await create(client, practitioner())
    versioned = f"Practitioner/{doctor['id']}/_history/1"
    encounter = visit(
        PATIENT_URN,
        f"Practitioner/{doctor['id']}",
        contained=[{"resourceType": "Location", "id": "room", "name": "Cabinet"}],
        location=[{"location": {"reference": "#room"}}],
        serviceProvider={"reference": "https://other.example/fhir/Organization/1"},
    )
    encounter["participant"] += [
        {"individual": {"reference": versioned}},
        {"individual": {"reference": f"http://test/fhir/Practitioner/{doctor['id']}"}},
        {"individual": {"identifier": {"system": INPE, "value": "100000027"}}},
    ]
    response = await client.post(
        "/fhir",
        headers=FHIR_JSON,
        json=bundle("transaction", post(encounter), post(patient(), PATIENT_URN)),
    )
    assert response.status_code == 200, response.text
    stored = response.json()["entry"][0]["resource"]
    assert stored["subject"]["reference"].startswith("Patient/")
    assert stored["serviceProvider"]["reference"] == "https://other.example/fhir/Organization/1"


async def test_duplicate_full_urls_are_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """bdl-7: a fullUrl names one entry (a batch's Bundle obeys it too)."""
    before = await platform.row_counts()
    for kind in ("transaction", "batch"):
        response = await client.post(
            "/fhir",
            headers=FHIR_JSON,
            json=bundle(
                kind,
                post(patient(), PATIENT_URN),
                post(patient(immat="222222222", cin="A2"), DOCTOR_URN),
                post(patient(immat="333333333", cin="A3"), PATIENT_URN),
            ),
        )
        assert_outcome(response, 400, ErrorCode.DUPLICATE_FULL_URL, "Bundle.entry[2].fullUrl")
    assert await platform.row_counts() == before


async def test_batch_entry_with_a_reference_to_nothing_fails_alone(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """Batch entries do not see one another: a urn:uuid of another entry resolves to nothing."""
    doctor = await create(client, practitioner())
    insured = await create(client, patient())
    response = await client.post(
        "/fhir",
        headers=FHIR_JSON,
        json=bundle(
            "batch",
            post(visit(f"Patient/{insured['id']}", "Practitioner/doesnotexist")),
            post(visit(PATIENT_URN, f"Practitioner/{doctor['id']}")),
            post(patient(immat="222222222", cin="A2"), PATIENT_URN),
            post(visit(f"Patient/{insured['id']}", f"Practitioner/{doctor['id']}")),
        ),
    )
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    statuses = [e["response"]["status"] for e in entries]
    assert statuses == [
        "422 Unprocessable Entity",
        "422 Unprocessable Entity",
        "201 Created",
        "201 Created",
    ]
    first, second = (e["response"]["outcome"]["issue"] for e in entries[:2])
    assert first[0]["details"]["coding"][0]["code"] == ErrorCode.DANGLING_REFERENCE
    assert first[0]["expression"] == ["Encounter.participant[0].individual.reference"]
    assert second[0]["expression"] == ["Encounter.subject.reference"]
    assert (await platform.row_counts())["resources"] == 4
