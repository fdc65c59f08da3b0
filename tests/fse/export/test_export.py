"""Bulk Data $export: kick-off, polling, manifest, NDJSON files, scope, errors, ownership."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from fse.errors import ErrorCode
from fse.export.jobs import create_job, delete_job, export_jobs, find_job
from fse.export.routes import NDJSON
from fse.export.runner import ExportRunner
from fse.export.scope import ExportScope
from fse.resources import model_class
from tests.builders import FHIR_JSON, claim, create, medication_request, patient, practitioner
from tests.conftest import Platform
from tests.fse.fhir_api.test_errors import assert_outcome

ASYNC = {"Prefer": "respond-async"}


async def kick_off(client: httpx.AsyncClient, path: str = "/fhir/$export", **params: str) -> str:
    response = await client.get(path, params=params, headers=ASYNC)
    assert response.status_code == 202, response.text
    return response.headers["content-location"]


async def manifest_of(client: httpx.AsyncClient, status_url: str) -> dict[str, Any]:
    """Poll as a client does: 202 with X-Progress and Retry-After, then 200 and the manifest."""
    for _ in range(400):
        response = await client.get(status_url)
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("application/json")
            return response.json()
        assert response.status_code == 202, response.text
        assert response.headers["x-progress"] and response.headers["retry-after"].isdigit()
        await asyncio.sleep(0.02)
    raise AssertionError(f"{status_url} never finished")


async def exported(client: httpx.AsyncClient, status_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every exported resource per type, in file order, each line a valid FHIR resource."""
    found: dict[str, list[dict[str, Any]]] = {}
    for output in (await manifest_of(client, status_url))["output"]:
        response = await client.get(output["url"], headers={"accept": NDJSON})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert len(lines) == output["count"]
        for line in lines:
            assert line["resourceType"] == output["type"]
            model_class(output["type"]).model_validate(line)
        found.setdefault(output["type"], []).extend(lines)
    return found


def ids(resources: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in resources]


def client_id_of(token: str) -> str:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


async def test_system_export_gives_one_file_per_type_with_exact_counts(
    client: httpx.AsyncClient,
) -> None:
    fatima = await create(client, patient())
    rachid = await create(client, patient("234567891", "BE654321", given="Rachid"))
    claims = [await create(client, claim(f"Patient/{fatima['id']}", n)) for n in (1, 2, 3)]
    status_url = await kick_off(client, _type="Patient,Claim")
    assert status_url.startswith("http://test/fhir/$export-status/")
    manifest = await manifest_of(client, status_url)
    assert manifest["request"] == "http://test/fhir/$export?_type=Patient%2CClaim"
    assert manifest["requiresAccessToken"] is True
    assert manifest["error"] == []
    assert manifest["transactionTime"].endswith("Z")
    assert [(o["type"], o["count"]) for o in manifest["output"]] == [("Patient", 2), ("Claim", 3)]
    found = await exported(client, status_url)
    assert ids(found["Patient"]) == [fatima["id"], rachid["id"]]
    assert found["Patient"][0] == fatima  # CIN opened for the authorised reader, as a read
    assert found["Claim"] == claims  # the stored JSON, as a read serves it


async def test_without_type_every_type_the_caller_may_read_is_exported(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    fatima = await create(client, patient())
    await create(client, claim(f"Patient/{fatima['id']}"))
    await create(client, practitioner())
    everything = await exported(client, await kick_off(client))
    assert {"Patient", "Claim", "Practitioner"} <= set(everything)
    token = await platform.token_with("system/Patient.rs system/Claim.r")
    limited = httpx.AsyncClient(
        transport=client._transport,
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    )
    async with limited:
        only = await exported(limited, await kick_off(limited))
        assert set(only) == {"Patient"}  # Claim is readable, not searchable: left out
        refused = await limited.get("/fhir/$export", params={"_type": "Claim"}, headers=ASYNC)
        assert_outcome(refused, 403, ErrorCode.FORBIDDEN, "system/Claim.s")
        nothing = await platform.token_with("system/Claim.c")
        none = await limited.get(
            "/fhir/$export", headers={**ASYNC, "Authorization": f"Bearer {nothing}"}
        )
        assert_outcome(none, 403, ErrorCode.FORBIDDEN)


async def test_since_exports_only_what_changed_after_the_instant(
    client: httpx.AsyncClient,
) -> None:
    fatima = await create(client, patient())
    await create(client, patient("234567891", "BE654321", given="Rachid"))
    await asyncio.sleep(0.01)
    since = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    await asyncio.sleep(0.01)
    fatima["name"][0]["family"] = "Bennani"
    await client.put(f"/fhir/Patient/{fatima['id']}", json=fatima, headers=FHIR_JSON)
    found = await exported(client, await kick_off(client, _type="Patient", _since=since))
    assert [(p["id"], p["meta"]["versionId"]) for p in found["Patient"]] == [(fatima["id"], "2")]
    later = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    assert await exported(client, await kick_off(client, _type="Patient", _since=later)) == {}


async def test_patient_export_holds_that_insured_s_compartment_only(
    client: httpx.AsyncClient,
) -> None:
    fatima = await create(client, patient())
    rachid = await create(client, patient("234567891", "BE654321", given="Rachid"))
    doctor = await create(client, practitioner())
    her_claim = await create(client, claim(f"Patient/{fatima['id']}", 1))
    her_rx = await create(client, medication_request(f"Patient/{fatima['id']}"))
    his_claim = await create(client, claim(f"Patient/{rachid['id']}", 2))
    found = await exported(client, await kick_off(client, f"/fhir/Patient/{fatima['id']}/$export"))
    assert ids(found["Patient"]) == [fatima["id"]]
    assert ids(found["Claim"]) == [her_claim["id"]]
    assert ids(found["MedicationRequest"]) == [her_rx["id"]]
    # the export's own AuditEvent names her, so it is in her compartment (and her access log)
    [event] = found["AuditEvent"]
    assert event["entity"][0]["what"] == {"reference": f"Patient/{fatima['id']}"}
    assert "a exporté vos données" in event["text"]["div"]
    assert set(found) == {"Patient", "Claim", "MedicationRequest", "AuditEvent"}
    everyone = await exported(client, await kick_off(client, "/fhir/Patient/$export"))
    assert sorted(ids(everyone["Patient"])) == sorted([fatima["id"], rachid["id"]])
    assert ids(everyone["Claim"]) == [her_claim["id"], his_claim["id"]]
    assert "Practitioner" not in everyone and doctor["id"]
    outside = await client.get(
        "/fhir/Patient/$export", params={"_type": "Practitioner"}, headers=ASYNC
    )
    assert_outcome(outside, 400, ErrorCode.INVALID_SEARCH_PARAMETER, "_type")
    unknown = await client.get("/fhir/Patient/nobody/$export", headers=ASYNC)
    assert_outcome(unknown, 404, ErrorCode.NOT_FOUND)


async def test_deleted_resources_are_not_exported(client: httpx.AsyncClient) -> None:
    kept = await create(client, patient())
    gone = await create(client, patient("234567891", "BE654321", given="Rachid"))
    assert (await client.delete(f"/fhir/Patient/{gone['id']}")).status_code == 204
    found = await exported(client, await kick_off(client, _type="Patient"))
    assert ids(found["Patient"]) == [kept["id"]]


@pytest.mark.parametrize(("page_size", "max_lines", "files"), [(2, 2, [2, 2, 1]), (2, 3, [3, 2])])
async def test_files_split_past_the_line_limit_and_pages_lose_nothing(
    client: httpx.AsyncClient,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    page_size: int,
    max_lines: int,
    files: list[int],
) -> None:
    monkeypatch.setattr(platform.settings, "export_page_size", page_size)
    monkeypatch.setattr(platform.settings, "export_max_lines_per_file", max_lines)
    fatima = await create(client, patient())
    claims = [await create(client, claim(f"Patient/{fatima['id']}", n)) for n in range(1, 6)]
    status_url = await kick_off(client, _type="Claim")
    manifest = await manifest_of(client, status_url)
    assert [o["count"] for o in manifest["output"]] == files
    assert [o["url"].rsplit("/", 1)[1] for o in manifest["output"]] == [
        f"Claim-{n}.ndjson" for n in range(1, len(files) + 1)
    ]
    assert ids((await exported(client, status_url))["Claim"]) == ids(claims)


async def test_kick_off_errors_are_operation_outcomes_and_store_nothing(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    before = await platform.row_counts()
    no_prefer = await client.get("/fhir/$export")
    assert_outcome(no_prefer, 400, ErrorCode.PRECONDITION_MISSING, "Prefer")
    unknown = await client.get("/fhir/$export", params={"_type": "Claim,Bogus"}, headers=ASYNC)
    assert_outcome(unknown, 400, ErrorCode.UNKNOWN_RESOURCE_TYPE, "_type")
    since = await client.get("/fhir/$export", params={"_since": "yesterday"}, headers=ASYNC)
    assert_outcome(since, 400, ErrorCode.INVALID_SEARCH_PARAMETER, "_since")
    output = await client.get("/fhir/$export", params={"_outputFormat": "csv"}, headers=ASYNC)
    assert_outcome(output, 400, ErrorCode.INVALID_REQUEST, "_outputFormat")
    strict = await client.get(
        "/fhir/$export",
        params={"_typeFilter": "Claim?status=active"},
        headers={"Prefer": "respond-async, handling=strict"},
    )
    assert_outcome(strict, 400, ErrorCode.UNKNOWN_SEARCH_PARAMETER, "_typeFilter")
    assert await platform.row_counts() == before
    for accepted in ("application/fhir+ndjson", "application/ndjson", "ndjson"):
        await manifest_of(client, await kick_off(client, _type="Claim", _outputFormat=accepted))


async def test_only_the_client_who_started_a_job_sees_polls_downloads_or_deletes_it(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    fatima = await create(client, patient())
    await create(client, claim(f"Patient/{fatima['id']}"))
    status_url = await kick_off(client, _type="Patient,Claim")
    manifest = await manifest_of(client, status_url)
    file_url = manifest["output"][0]["url"]
    other = {"Authorization": f"Bearer {await platform.token_with('system/*.rs')}"}
    assert_outcome(await client.get(status_url, headers=other), 404, ErrorCode.NOT_FOUND)
    assert_outcome(await client.get(file_url, headers=other), 404, ErrorCode.NOT_FOUND)
    assert_outcome(await client.delete(status_url, headers=other), 404, ErrorCode.NOT_FOUND)
    assert (await client.get(file_url)).status_code == 200
    job_id = status_url.rsplit("/", 1)[1]
    directory = platform.settings.export_dir / job_id
    assert sorted(p.name for p in directory.iterdir()) == ["Claim-1.ndjson", "Patient-1.ndjson"]
    assert (await client.delete(status_url)).status_code == 202
    assert not directory.exists()
    assert_outcome(await client.get(status_url), 404, ErrorCode.NOT_FOUND)
    assert_outcome(await client.get(file_url), 404, ErrorCode.NOT_FOUND)
    bad_name = status_url.replace("$export-status", "$export-file") + "/..%2Fsecret"
    assert (await client.get(bad_name)).status_code == 404


async def test_a_running_job_reports_progress_and_an_interrupted_one_fails_clearly(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    owner = client_id_of(platform.token)
    store = platform.app.state.fhir.store
    async with store.transaction() as conn:
        job = await create_job(conn, owner, "http://test/fhir/$export", ExportScope(("Claim",)))
    status_url = f"http://test/fhir/$export-status/{job.job_id}"
    running = await client.get(status_url)
    assert running.status_code == 202
    assert running.headers["x-progress"] == "en attente"
    assert running.headers["retry-after"] == "2"
    # no task beats for it (its server restarted): the next poll says so, once and for all
    async with store.transaction() as conn:
        await conn.execute(
            update(export_jobs)
            .where(export_jobs.c.job_id == job.job_id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    failed = await client.get(status_url)
    assert_outcome(failed, 500, ErrorCode.EXPORT_FAILED)
    assert "relancez l'export" in failed.json()["issue"][0]["diagnostics"]
    stored = await find_job(platform.engine, job.job_id, owner)
    assert stored is not None and stored.status == "failed"


async def test_kick_off_is_audited_with_who_exported_what(client: httpx.AsyncClient) -> None:
    await manifest_of(client, await kick_off(client, _type="Claim,Patient"))
    events = (await client.get("/fhir/AuditEvent", params={"type": "110106"})).json()["entry"]
    [event] = [e["resource"] for e in events]
    assert event["agent"][0]["who"]["display"] == "test-suite"
    assert (
        "le système test-suite a lancé un export en masse : Claim, Patient"
        in (event["text"]["div"])
    )
    query = base64.b64decode(event["entity"][0]["query"]).decode()
    assert query == "http://test/fhir/$export?_type=Claim%2CPatient"


async def test_capability_statement_advertises_bulk_export(client: httpx.AsyncClient) -> None:
    statement = (await client.get("/fhir/metadata")).json()
    bulk = "http://hl7.org/fhir/uv/bulkdata"
    assert statement["instantiates"] == [f"{bulk}/CapabilityStatement/bulk-data"]
    assert statement["rest"][0]["operation"] == [
        {"name": "export", "definition": f"{bulk}/OperationDefinition/export"}
    ]
    patient_entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "export", "definition": f"{bulk}/OperationDefinition/patient-export"} in (
        patient_entry["operation"]
    )


async def test_a_job_deleted_from_another_worker_stops_and_keeps_no_file(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """The task learns of the deletion at its next page (its heartbeat finds no row)."""
    fatima = await create(client, patient())
    await create(client, claim(f"Patient/{fatima['id']}"))
    runner = platform.app.state.exports
    async with platform.app.state.fhir.store.transaction() as conn:
        job = await create_job(
            conn, "elsewhere", "http://test/fhir/$export", ExportScope(("Claim",))
        )
    await delete_job(platform.engine, job.job_id)
    runner.start(job)
    await runner.wait(job.job_id)
    assert not runner.directory(job.job_id).exists()
    assert await find_job(platform.engine, job.job_id, "elsewhere") is None


async def test_stopping_the_server_fails_its_running_jobs_with_a_clear_message(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    runner = ExportRunner(platform.app.state.fhir.store, platform.settings)
    async with platform.app.state.fhir.store.transaction() as conn:
        job = await create_job(conn, "owner", "http://test/fhir/$export", ExportScope(("Claim",)))
    blocked = asyncio.Event()
    runner.tasks[job.job_id] = asyncio.create_task(blocked.wait())
    await runner.close()
    stopped = await find_job(platform.engine, job.job_id, "owner")
    assert stopped is not None and stopped.status == "failed"
    assert stopped.error is not None and "relancez" in stopped.error
