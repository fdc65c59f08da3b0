"""Every error is an OperationOutcome with a stable code and path, and leaves nothing stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fse.errors import ERROR_CODE_SYSTEM, ErrorCode
from tests.builders import FHIR_JSON, IMMAT, create, patient
from tests.conftest import Platform


def assert_outcome(
    response: httpx.Response, status: int, code: ErrorCode, path: str | None = None
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    codes = [c["code"] for i in outcome["issue"] for c in i["details"]["coding"]]
    systems = {c["system"] for i in outcome["issue"] for c in i["details"]["coding"]}
    assert code.value in codes
    assert systems == {ERROR_CODE_SYSTEM}
    if path is not None:
        assert path in [e for i in outcome["issue"] for e in i.get("expression", [])]


BAD_CREATES: list[tuple[str, Any, dict[str, str], int, ErrorCode, str | None]] = [
    ("malformed json", b"{not json", FHIR_JSON, 400, ErrorCode.MALFORMED_JSON, None),
    ("json array", b"[]", FHIR_JSON, 400, ErrorCode.MALFORMED_JSON, None),
    (
        "wrong type",
        b'{"resourceType":"Claim"}',
        FHIR_JSON,
        400,
        ErrorCode.WRONG_RESOURCE_TYPE,
        "resourceType",
    ),
    ("missing type", b'{"gender":"female"}', FHIR_JSON, 400, ErrorCode.WRONG_RESOURCE_TYPE, None),
    (
        "bad date",
        b'{"resourceType":"Patient","birthDate":"12/04/1978"}',
        FHIR_JSON,
        422,
        ErrorCode.INVALID_RESOURCE,
        "Patient.birthDate",
    ),
    (
        "unknown element",
        b'{"resourceType":"Patient","colour":"blue"}',
        FHIR_JSON,
        422,
        ErrorCode.INVALID_RESOURCE,
        "Patient.colour",
    ),
    (
        "nested bad date",
        b'{"resourceType":"Patient","name":[{"period":{"start":"soon"}}]}',
        FHIR_JSON,
        422,
        ErrorCode.INVALID_RESOURCE,
        "Patient.name[0].period.start",
    ),
    (
        "text/plain",
        b'{"resourceType":"Patient"}',
        {"content-type": "text/plain"},
        415,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        None,
    ),
    (
        "xml",
        b"<Patient/>",
        {"content-type": "application/fhir+xml"},
        415,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "code", "path"),
    BAD_CREATES,
    ids=[c[0] for c in BAD_CREATES],
)
async def test_bad_create_is_refused_and_stores_nothing(
    client: httpx.AsyncClient,
    platform: Platform,
    case: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: ErrorCode,
    path: str | None,
) -> None:
    before = await platform.row_counts()
    response = await client.post("/fhir/Patient", content=body, headers=headers)
    assert_outcome(response, status, code, path)
    assert await platform.row_counts() == before


async def test_invalid_claim_reports_every_broken_element(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    before = await platform.row_counts()
    response = await client.post(
        "/fhir/Claim",
        json={"resourceType": "Claim", "status": "active", "item": [{"sequence": "one"}]},
        headers=FHIR_JSON,
    )
    assert_outcome(response, 422, ErrorCode.INVALID_RESOURCE, "Claim.item[0].sequence")
    paths = {e for i in response.json()["issue"] for e in i["expression"]}
    assert {"Claim.item[0].productOrService", "Claim.patient", "Claim.insurance"} <= paths
    assert await platform.row_counts() == before


async def test_body_over_the_limit_is_413(platform: Platform, client: httpx.AsyncClient) -> None:
    before = await platform.row_counts()
    limit = platform.settings.max_body_bytes
    big = patient(text={"status": "generated", "div": "<div>" + "x" * limit + "</div>"})
    response = await client.post("/fhir/Patient", json=big, headers=FHIR_JSON)
    assert_outcome(response, 413, ErrorCode.PAYLOAD_TOO_LARGE)
    assert await platform.row_counts() == before


async def test_unknown_resource_type_is_404(client: httpx.AsyncClient, platform: Platform) -> None:
    before = await platform.row_counts()
    assert_outcome(await client.get("/fhir/Basic"), 404, ErrorCode.UNKNOWN_RESOURCE_TYPE)
    assert_outcome(
        await client.post("/fhir/Basic", json={"resourceType": "Basic"}, headers=FHIR_JSON),
        404,
        ErrorCode.UNKNOWN_RESOURCE_TYPE,
    )
    assert_outcome(await client.get("/fhir/Basic/1"), 404, ErrorCode.UNKNOWN_RESOURCE_TYPE)
    assert await platform.row_counts() == before


async def test_unknown_id_and_version_are_404(client: httpx.AsyncClient) -> None:
    assert_outcome(await client.get("/fhir/Patient/nope"), 404, ErrorCode.NOT_FOUND)
    assert_outcome(await client.get("/fhir/Patient/not$an$id"), 404, ErrorCode.NOT_FOUND)
    created = await create(client, patient())
    assert_outcome(
        await client.get(f"/fhir/Patient/{created['id']}/_history/9"), 404, ErrorCode.NOT_FOUND
    )
    assert_outcome(await client.get("/fhir/Patient/nope/_history"), 404, ErrorCode.NOT_FOUND)
    assert_outcome(await client.delete("/fhir/Patient/nope"), 404, ErrorCode.NOT_FOUND)


async def test_unsupported_methods_are_405(client: httpx.AsyncClient, platform: Platform) -> None:
    created = await create(client, patient())
    before = await platform.row_counts()
    assert_outcome(
        await client.patch(f"/fhir/Patient/{created['id']}", json={}),
        405,
        ErrorCode.METHOD_NOT_ALLOWED,
    )
    assert_outcome(await client.delete("/fhir/Patient"), 405, ErrorCode.METHOD_NOT_ALLOWED)
    assert_outcome(
        await client.post("/fhir/Patient/whatever", json={}, headers=FHIR_JSON),
        405,
        ErrorCode.METHOD_NOT_ALLOWED,
    )
    assert await platform.row_counts() == before


async def test_update_of_unknown_id_is_405_and_creates_nothing(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    before = await platform.row_counts()
    body = {**patient(), "id": "chosen-by-client"}
    response = await client.put("/fhir/Patient/chosen-by-client", json=body, headers=FHIR_JSON)
    assert_outcome(response, 405, ErrorCode.UPDATE_CREATE_NOT_SUPPORTED)
    assert await platform.row_counts() == before


async def test_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    created = await create(client, patient())
    await client.put(f"/fhir/Patient/{created['id']}", json=created, headers=FHIR_JSON)
    before = await platform.row_counts()
    created["gender"] = "male"
    response = await client.put(
        f"/fhir/Patient/{created['id']}", json=created, headers={**FHIR_JSON, "If-Match": 'W/"1"'}
    )
    assert_outcome(response, 412, ErrorCode.VERSION_CONFLICT)
    assert await platform.row_counts() == before
    assert (await client.get(f"/fhir/Patient/{created['id']}")).json()["gender"] == "female"


async def test_malformed_if_match_is_400(client: httpx.AsyncClient) -> None:
    created = await create(client, patient())
    response = await client.put(
        f"/fhir/Patient/{created['id']}",
        json=created,
        headers={**FHIR_JSON, "If-Match": "yesterday"},
    )
    assert_outcome(response, 400, ErrorCode.INVALID_REQUEST)


async def test_update_with_other_id_in_body_is_400(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    created = await create(client, patient())
    before = await platform.row_counts()
    response = await client.put(
        f"/fhir/Patient/{created['id']}", json={**created, "id": "other"}, headers=FHIR_JSON
    )
    assert_outcome(response, 400, ErrorCode.ID_MISMATCH, "Patient.id")
    missing = {k: v for k, v in created.items() if k != "id"}
    response = await client.put(f"/fhir/Patient/{created['id']}", json=missing, headers=FHIR_JSON)
    assert_outcome(response, 400, ErrorCode.ID_MISMATCH)
    assert await platform.row_counts() == before


async def test_invalid_update_keeps_the_current_version(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    created = await create(client, patient())
    before = await platform.row_counts()
    response = await client.put(
        f"/fhir/Patient/{created['id']}", json={**created, "birthDate": "x"}, headers=FHIR_JSON
    )
    assert_outcome(response, 422, ErrorCode.INVALID_RESOURCE, "Patient.birthDate")
    assert await platform.row_counts() == before


async def test_duplicate_identifier_is_409_naming_the_identifier(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await create(client, patient(immat="123456789", cin="BE1"))
    before = await platform.row_counts()
    response = await client.post(
        "/fhir/Patient", json=patient(immat="123456789", cin="BE2"), headers=FHIR_JSON
    )
    assert_outcome(response, 409, ErrorCode.DUPLICATE_IDENTIFIER, "Patient.identifier[0]")
    assert IMMAT in response.json()["issue"][0]["diagnostics"]
    assert await platform.row_counts() == before


async def test_update_onto_another_resources_identifier_is_409(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await create(client, patient(immat="111111111", cin="A1"))
    second = await create(client, patient(immat="222222222", cin="A2"))
    before = await platform.row_counts()
    second["identifier"][0]["value"] = "111111111"
    response = await client.put(f"/fhir/Patient/{second['id']}", json=second, headers=FHIR_JSON)
    assert_outcome(response, 409, ErrorCode.DUPLICATE_IDENTIFIER, "Patient.identifier[0]")
    assert await platform.row_counts() == before


async def test_unknown_route_is_an_operation_outcome(client: httpx.AsyncClient) -> None:
    assert_outcome(await client.get("/fhir/Patient/a/b/c/d"), 404, ErrorCode.NOT_FOUND)


async def test_bad_history_parameters_are_400(client: httpx.AsyncClient) -> None:
    for params, name in (({"_since": "last week"}, "_since"), ({"_count": "x"}, "_count")):
        response = await client.get("/fhir/Patient/_history", params=params)
        assert_outcome(response, 400, ErrorCode.INVALID_SEARCH_PARAMETER, name)
