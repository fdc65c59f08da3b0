"""Committed writes are announced, rolled-back ones are not; clients are throttled."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fse.app import close, create_app
from fse.errors import ErrorCode
from fse.security.users import Role, create_user
from tests.builders import FHIR_JSON, create, patient
from tests.conftest import BACKENDS, Platform, build_platform
from tests.fse.fhir_api.test_errors import assert_outcome
from tests.fse.web.test_login import PASSWORD, login


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


async def test_each_system_client_has_its_own_budget_shared_by_every_worker(
    tmp_path: Path,
) -> None:
    """Two server workers (two apps on one database and one Redis): a client's requests count
    in both; another client from the same address keeps its own budget."""
    platform, url = await build_platform("postgresql", tmp_path, rate_limit_per_system_client=3)
    second_worker = create_app(platform.settings)
    other = await platform.token_with("system/*.rs")
    try:
        workers = [httpx.ASGITransport(app=app) for app in (platform.app, second_worker)]
        answers = []
        for n in range(4):
            async with httpx.AsyncClient(transport=workers[n % 2], base_url="http://test") as http:
                headers = {"Authorization": f"Bearer {platform.token}"}
                answers.append(await http.get("/fhir/Patient", headers=headers))
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        assert_outcome(answers[3], 429, ErrorCode.RATE_LIMITED)
        assert "per minute for this client" in answers[3].json()["issue"][0]["diagnostics"]
        async with httpx.AsyncClient(transport=workers[0], base_url="http://test") as http:
            mine = await http.get("/fhir/Patient", headers={"Authorization": f"Bearer {other}"})
        assert mine.status_code == 200
    finally:
        await close(second_worker)
        await close(platform.app)
        from tests.services import drop_pg_database

        await drop_pg_database(url)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_signed_in_user_has_a_budget_of_their_own(backend: str, tmp_path: Path) -> None:
    platform, url = await build_platform(backend, tmp_path, rate_limit_per_user=2)
    try:
        await create_user(platform.engine, "agent.quota", PASSWORD, Role.CNSS_AGENT, "Agent")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=platform.app), base_url="http://test"
        ) as browser:
            assert (await login(browser, "agent.quota")).status_code == 303
            statuses = [(await browser.get("/fhir/Claim")).status_code for _ in range(2)]
            refused = await browser.get("/fhir/Claim")
        assert statuses == [200, 200]
        assert_outcome(refused, 429, ErrorCode.RATE_LIMITED)
        assert "per minute for this user" in refused.json()["issue"][0]["diagnostics"]
    finally:
        await close(platform.app)
        if backend == "postgresql":
            from tests.services import drop_pg_database

            await drop_pg_database(url)
