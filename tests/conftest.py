"""Fixtures: every API test runs on SQLite (in-process runtime) and PostgreSQL (Redis runtime)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from fse.app import close, create_app
from fse.config import Settings
from fse.crypto.tokens import issue
from fse.security.clients import create_client
from fse.security.tables import SECURITY_TABLES
from fse.store.tables import metadata
from tests.services import (
    REDIS_URL,
    OwnRedis,
    create_pg_database,
    drop_pg_database,
    free_port,
    migrate_async,
)

BACKENDS = ("sqlite", "postgresql")


STORE_TABLES = [t for t in metadata.sorted_tables if t not in SECURITY_TABLES]
ALL_SCOPES = "system/*.cruds"


@dataclass
class Platform:
    backend: str
    settings: Settings
    app: FastAPI
    token: str = ""
    """Bearer token of the test suite's system client (all scopes)."""

    @property
    def engine(self) -> AsyncEngine:
        return self.app.state.engine

    async def row_counts(self) -> dict[str, int]:
        """Rows in every store table: the proof that a failed request left no trace (but its
        record in the access log, which keeps refused attempts by design)."""
        async with self.engine.connect() as conn:
            return {
                table.name: await conn.scalar(select(func.count()).select_from(table))
                for table in metadata.sorted_tables
                if table.name != "api_access_log"
            }

    def token_for(self, client_id: str, scope: str, ttl_seconds: int = 3600) -> str:
        audience = self.settings.token_audience
        claims = {"iss": audience, "aud": audience, "sub": client_id, "scope": scope}
        return issue(self.app.state.signing_key, claims, ttl_seconds)

    async def token_with(self, scopes: str) -> str:
        """A token of a new system client holding exactly ``scopes`` (e.g. a role's grants)."""
        client, _secret = await create_client(self.engine, f"c-{uuid.uuid4().hex[:8]}", scopes)
        return self.token_for(client.client_id, scopes)

    async def truncate(self) -> None:
        """Empty the resource store (system clients stay: they belong to the session) and the
        runtime cache that mirrors it (a day's peer mean, a recorded read): each test starts
        cold, whatever ran before it in this process."""
        await self.app.state.runtime.cache.close()  # in-process entries, Redis's fallback too
        await self.app.state.runtime.local.close()
        if self.settings.redis_url:
            client = redis.from_url(self.settings.redis_url)
            async with client:
                async for key in client.scan_iter(f"{self.settings.redis_namespace}:cache:*"):
                    await client.delete(key)
        names = [t.name for t in reversed(STORE_TABLES)]
        async with self.engine.begin() as conn:
            if self.backend == "postgresql":
                await conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
            else:
                for name in names:
                    await conn.execute(text(f"DELETE FROM {name}"))


async def build_platform(backend: str, tmp: Path, **overrides: object) -> tuple[Platform, str]:
    if backend == "sqlite":
        url, redis_url = f"sqlite+aiosqlite:///{tmp / 'fse.sqlite3'}", None
    else:
        url, redis_url = await create_pg_database(), REDIS_URL
    await migrate_async(url)
    options: dict[str, object] = {
        "database_url": url,
        "redis_url": redis_url,
        "redis_namespace": f"fse-test-{uuid.uuid4().hex[:8]}",
        "rate_limit_per_minute": 0,
        "rate_limit_per_system_client": 0,
        "rate_limit_per_user": 0,
        "signing_key_file": tmp / "signing-key.pem",
        "token_keys_file": tmp / "token-keys.json",
        "cin_key_file": tmp / "cin-keys.json",
        "payments_dir": tmp / "payments",
        "reference_data_dir": tmp / "reference-data",
        "export_dir": tmp / "exports",
        "payment_schedule": False,
        **overrides,
    }
    settings = Settings(**options)  # type: ignore[arg-type]
    platform = Platform(backend, settings, create_app(settings))
    client, _secret = await create_client(platform.engine, "test-suite", ALL_SCOPES)
    platform.token = platform.token_for(client.client_id, ALL_SCOPES)
    return platform, url


@pytest.fixture(scope="session", params=BACKENDS)
async def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    built, url = await build_platform(request.param, tmp_path_factory.mktemp(request.param))
    yield built
    await close(built.app)
    if request.param == "postgresql":
        await drop_pg_database(url)


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    await platform.truncate()
    transport = httpx.ASGITransport(app=platform.app)
    headers = {"Authorization": f"Bearer {platform.token}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as http:
        yield http


@pytest.fixture
async def browser(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """A web browser's view of the app: cookies kept, no token (sign in through the forms)."""
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """Our own redis-server, on its own port, that a test may stop and start again (never the
    shared one)."""
    redis = OwnRedis(tmp_path, free_port())
    redis.start()
    yield redis
    redis.stop()
