"""Committed writes are announced, rolled-back ones are not; clients are throttled."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fse.app import close
from fse.errors import ErrorCode
from tests.builders import FHIR_JSON, create, patient
from tests.conftest import BACKENDS, Platform, build_platform
from tests.fse.fhir_api.test_errors import assert_outcome


async def test_writes_are_announced_after_commit(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    events = platform.app.state.runtime.events
    start = (await events.read(None, count=100_000) or [("0-0", {})])[-1][0]
    created = await create(client, patient())
    await client.put(f"/fhir/Patient/{created['id']}", json=created, headers=FHIR_JSON)
    await client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "birthDate": "x"}, headers=FHIR_JSON
    )
    await client.delete(f"/fhir/Patient/{created['id']}")
    await events.flush()
    seen = [(e["method"], e["versionId"]) for _, e in await events.read(start)]
    assert seen == [("POST", 1), ("PUT", 2), ("DELETE", 3)]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_client_over_the_limit_gets_429_with_retry_after(
    backend: str, tmp_path: Path
) -> None:
    platform, _url = await build_platform(backend, tmp_path, rate_limit_per_minute=3)
    transport = httpx.ASGITransport(app=platform.app)
    try:
        headers = {"Authorization": f"Bearer {platform.token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as client:
            statuses = [(await client.get("/fhir/Patient")).status_code for _ in range(3)]
            refused = await client.get("/fhir/Patient")
        assert statuses == [200, 200, 200]
        assert_outcome(refused, 429, ErrorCode.RATE_LIMITED)
        assert int(refused.headers["retry-after"]) >= 1
    finally:
        await close(platform.app)
        if backend == "postgresql":
            from tests.services import drop_pg_database

            await drop_pg_database(_url)
