"""`GET /health` and `GET /ready` for a load balancer, and the API with Redis unreachable: it
answers as without Redis (rate limits in-process), never a 500, and `/ready` says so."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from fse.app import close, create_app
from fse.config import Settings
from fse.errors import ErrorCode
from fse.security.clients import create_client
from fse.security.users import Role, create_user
from tests.conftest import Platform, build_platform
from tests.fse.fhir_api.test_errors import assert_outcome
from tests.fse.web.test_login import login
from tests.services import free_port


async def test_health_is_public_and_asks_nothing(platform: Platform) -> None:
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as anonymous:
        response = await anonymous.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "pass"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_ready_names_each_dependency(platform: Platform) -> None:
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as anonymous:
        response = await anonymous.get("/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "pass"
    assert body["checks"]["database"]["status"] == "up"
    assert body["checks"]["database"]["backend"] == platform.engine.dialect.name
    expected = "up" if platform.backend == "postgresql" else "not-configured"
    assert body["checks"]["redis"]["status"] == expected


async def test_ready_is_503_when_the_database_does_not_answer(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/absent",
        signing_key_file=tmp_path / "key.pem",
        cin_key_file=tmp_path / "cin.json",
        payment_schedule=False,
    )
    app = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as anonymous:
            assert (await anonymous.get("/health")).status_code == 200
            response = await anonymous.get("/ready")
        assert_outcome(response, 503, ErrorCode.NOT_READY, "database")
        assert response.headers["retry-after"]
        # a public door: the kind of failure, not the address or database behind it
        assert "127.0.0.1" not in response.text and "absent" not in response.text
    finally:
        await close(app)


@pytest.fixture(scope="module")
async def without_redis(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """A platform whose Redis never answers (nothing listens on its port), limits on."""
    built, _url = await build_platform(
        "sqlite",
        tmp_path_factory.mktemp("no-redis"),
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rate_limit_per_minute=12,
        rate_limit_per_system_client=100,
        rate_limit_per_user=100,
    )
    yield built
    await close(built.app)


async def test_redis_unreachable_the_api_answers_and_ready_says_degraded(
    without_redis: Platform,
) -> None:
    platform = without_redis
    client, secret = await create_client(
        platform.engine, f"c-{uuid.uuid4().hex[:6]}", "system/*.rs"
    )
    name = f"dr.{uuid.uuid4().hex[:8]}"
    await create_user(platform.engine, name, "correct-horse-battery", Role.PRESCRIBER, "Dr T")
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/fhir/metadata")).status_code == 200
        token = await http.post(
            "/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client.client_id, secret),
        )
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert (await http.get("/fhir/Patient", headers=bearer)).status_code == 200
        assert (await login(http, name, "wrong password")).status_code == 401
        assert (await login(http, name, "correct-horse-battery")).status_code == 303

        ready = await http.get("/ready")
        assert ready.status_code == 200  # degraded, still ready: the platform works without it
        body = ready.json()
        assert body["status"] == "warn"
        assert body["checks"]["redis"]["status"] == "down"
        assert body["checks"]["redis"]["code"] == ErrorCode.REDIS_DEGRADED.value
        assert body["checks"]["redis"]["fallbacks"] > 0
        assert "lastError" not in body["checks"]["redis"] and "127.0.0.1" not in ready.text

        # the limit per address still applies, counted in this process
        statuses = [(await http.get("/fhir/metadata")).status_code for _ in range(12)]
    assert 429 in statuses and set(statuses) == {200, 429}


async def test_the_cnss_dashboard_shows_redis_degraded(without_redis: Platform) -> None:
    name = f"agent.{uuid.uuid4().hex[:8]}"
    await create_user(without_redis.engine, name, "correct-horse-battery", Role.CNSS_AGENT, "A")
    transport = httpx.ASGITransport(app=without_redis.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as agent:
        assert (await login(agent, name, "correct-horse-battery")).status_code == 303
        page = await agent.get("/cnss/tableau-de-bord")
    assert page.status_code == 200, page.text
    assert "Redis indisponible depuis" in page.text and "mode dégradé" in page.text


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/health"), ("PATCH", "/health"), ("PUT", "/ready"), ("DELETE", "/ready")],
)
async def test_health_and_ready_answer_only_get(platform: Platform, method: str, path: str) -> None:
    """The two public doors change nothing: any other method is a 405 OperationOutcome naming
    GET and HEAD in ``Allow``, whatever the body, and nothing is stored."""
    before = await platform.row_counts()
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as anonymous:
        response = await anonymous.request(method, path, content=b'{"resourceType":"Patient"}')
    assert_outcome(response, 405, ErrorCode.METHOD_NOT_ALLOWED)
    assert response.headers["allow"] == "GET, HEAD"
    assert await platform.row_counts() == before
