"""A batch answers 200 with each entry's own outcome: an entry that fails, however it fails,
stores nothing and takes no other entry down; an entry that succeeded is reported as such."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from fse.errors import ERROR_CODE_SYSTEM, ErrorCode
from tests.builders import FHIR_JSON, IMMAT, patient
from tests.conftest import Platform
from tests.fse.fhir_api.test_transaction import bundle, post


def entry_code(entry: dict[str, Any]) -> str:
    """The FSE error code of a failed batch entry's OperationOutcome."""
    issue = entry["response"]["outcome"]["issue"][0]
    (coding,) = issue["details"]["coding"]
    assert coding["system"] == ERROR_CODE_SYSTEM
    return coding["code"]


async def found(client: httpx.AsyncClient, immat: str) -> int:
    page = (await client.get("/fhir/Patient", params={"identifier": f"{IMMAT}|{immat}"})).json()
    return len(page.get("entry", []))


async def test_batch_entries_failing_every_way_leave_the_others_standing(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """An invalid resource, a type the client may not write, a duplicate, an entry the server
    fails on (a date search past year 9999): each is its entry's error, the batch is 200."""
    token = await platform.token_with("system/Patient.crs")
    headers = {"Authorization": f"Bearer {token}", **FHIR_JSON}
    response = await client.post(
        "/fhir",
        headers=headers,
        json=bundle(
            "batch",
            post(patient(immat="111111111", cin="A1")),
            post({"resourceType": "Patient", "birthDate": "never"}),
            post({"resourceType": "Claim", "status": "active"}),
            post(patient(immat="111111111", cin="A3")),
            {"request": {"method": "GET", "url": "Patient?birthdate=9999-12-31T23:00:00-05:00"}},
            post(patient(immat="222222222", cin="A2")),
        ),
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "batch-response"
    entries = result["entry"]
    statuses = [e["response"]["status"] for e in entries]
    assert statuses[:4] == [
        "201 Created",
        "422 Unprocessable Entity",
        "403 Forbidden",
        "409 Conflict",
    ]
    assert statuses[5] == "201 Created"
    assert [entry_code(entries[i]) for i in (1, 2, 3)] == [
        ErrorCode.INVALID_RESOURCE,
        ErrorCode.FORBIDDEN,
        ErrorCode.DUPLICATE_IDENTIFIER,
    ]
    # However the server comes to refuse that search, it is that entry's error alone.
    assert statuses[4][0] in "45", statuses[4]
    assert entries[4]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert (await platform.row_counts())["resources"] == 2
    assert await found(client, "111111111") == 1
    assert await found(client, "222222222") == 1


async def test_an_unexpected_error_in_an_entry_is_that_entry_s_500_and_stores_nothing(
    client: httpx.AsyncClient,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A store that fails after writing one resource (the only way to be sure the server fails
    inside an entry: every input known to do so is a bug fixed where it is)."""
    store = platform.app.state.fhir.store
    real_create = store.create

    async def create_then_fail(conn: Any, rtype: str, resource: dict[str, Any], rid: Any = None):
        stored = await real_create(conn, rtype, resource, rid)
        if resource.get("name", [{}])[0].get("family") == "Crash":
            raise RuntimeError("disk on fire")
        return stored

    monkeypatch.setattr(store, "create", create_then_fail)
    crash = patient(immat="999999999", cin="Z9", family="Crash")

    with caplog.at_level(logging.ERROR):
        response = await client.post(
            "/fhir",
            headers=FHIR_JSON,
            json=bundle(
                "batch",
                post(patient(immat="111111111", cin="A1")),
                post(crash),
                post(patient(immat="222222222", cin="A2")),
            ),
        )
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == [
        "201 Created",
        "500 Internal Server Error",
        "201 Created",
    ]
    assert entry_code(entries[1]) == ErrorCode.INTERNAL_ERROR
    issue = entries[1]["response"]["outcome"]["issue"][0]
    assert issue["code"] == "exception"
    assert issue["expression"] == ["Bundle.entry[1]"]
    assert "this entry stored nothing" in issue["diagnostics"]
    assert "disk on fire" not in response.text  # the cause is logged, not told
    assert any(r.exc_info and "disk on fire" in str(r.exc_info[1]) for r in caplog.records)
    assert (await platform.row_counts())["resources"] == 2
    assert await found(client, "999999999") == 0

    # In a transaction the same failure rolls everything back: "nothing was stored" is true.
    before = await platform.row_counts()
    transport = httpx.ASGITransport(app=platform.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post(
            "/fhir",
            headers={"Authorization": f"Bearer {platform.token}", **FHIR_JSON},
            json=bundle("transaction", post(patient(immat="333333333", cin="A3")), post(crash)),
        )
    assert response.status_code == 500, response.text
    (issue,) = response.json()["issue"]
    assert issue["details"]["coding"][0]["code"] == ErrorCode.INTERNAL_ERROR
    assert "nothing was stored" in issue["diagnostics"]
    assert await platform.row_counts() == before
