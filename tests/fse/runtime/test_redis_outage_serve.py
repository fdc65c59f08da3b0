"""A real `fse serve --workers 2` on PostgreSQL, its Redis (our own redis-server) stopped for a
few seconds under load, then started again on the same port: no 5xx, every request answered,
every settled care sheet stored, and the rate limiter shared by both workers again after."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from bench.harness import listening_sockets
from fse.db import create_engine
from fse.security.clients import create_client
from fse.security.users import Role, create_user
from tests.fse.test_serve import wait_for
from tests.reimbursement.demo import FATIMA, act, claim, load_demo
from tests.services import (
    OwnRedis,
    create_pg_database,
    drop_pg_database,
    free_port,
    migrate_async,
    server_env,
)

FSE = "https://fse.cnss.ma/fhir/sid/fse"
PASSWORD = "correct-horse-battery"
CLIENTS = 6
SUBMIT = "/fhir/Claim/$submit"


@dataclass
class Server:
    port: int
    namespace: str
    database_url: str
    client_id: str
    secret: str
    username: str
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Load:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    during_outage: int = 0


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[Server, OwnRedis]]:
    redis = OwnRedis(tmp_path, free_port())
    redis.start()
    url = await create_pg_database()
    await migrate_async(url)
    engine = create_engine(url)
    try:
        client, secret = await create_client(engine, "outage", "system/*.cruds")
        username = f"dr.outage.{uuid.uuid4().hex[:6]}"
        await create_user(engine, username, PASSWORD, Role.PRESCRIBER, "Dr Outage")
    finally:
        await engine.dispose()
    running = Server(
        free_port(),
        f"fse-outage-{uuid.uuid4().hex[:8]}",
        url,
        client.client_id,
        secret,
        username,
        tmp_path / "server.log",
    )
    env = server_env(
        url,
        tmp_path,
        FSE_REDIS_URL=redis.url,
        FSE_REDIS_NAMESPACE=running.namespace,
        FSE_PORT=str(running.port),
        FSE_PAYMENT_SCHEDULE="false",
        FSE_RATE_LIMIT_PER_MINUTE="1000000",  # counted (in Redis), never reached
        FSE_RATE_LIMIT_PER_SYSTEM_CLIENT="1000000",
        FSE_LOGIN_FAILURES_PER_ADDRESS="1000000",
        FSE_LOGIN_FAILURES_PER_ACCOUNT="1000000",
    )
    with running.log.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fse.cli", "serve", "--workers", "2", "--quiet"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_for(lambda: listening_sockets(running.port) == 2, 60), running.log.read_text()
        yield running, redis
    finally:
        process.terminate()
        process.wait(timeout=30)
        redis.stop()
        await drop_pg_database(url)


async def token_of(http: httpx.AsyncClient, server: Server) -> httpx.Response:
    return await http.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(server.client_id, server.secret),
    )


async def login(http: httpx.AsyncClient, server: Server, password: str) -> list[httpx.Response]:
    http.cookies.clear()
    form = await http.get("/connexion")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if form.status_code != 200 or csrf is None or not password:
        return [form]
    posted = await http.post(
        "/connexion",
        data={"identifiant": server.username, "mot_de_passe": password, "csrf": csrf[1]},
    )
    return [form, posted]


async def drive(
    server: Server, refs: dict[str, str], load: Load, outage: asyncio.Event, stop: asyncio.Event
) -> None:
    """One client: a care sheet, the metadata and the login form each turn; every third turn
    also a token and a login (right or wrong password: argon2 is slow on a busy machine)."""
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
        bearer = {
            "Authorization": f"Bearer {(await token_of(http, server)).json()['access_token']}"
        }
        turn = 0
        while not stop.is_set():
            turn += 1
            sheet = claim(refs, FATIMA, [act("C", "80.00", "2026-11-20")])
            number = sheet["identifier"][0]["value"]
            password = "" if turn % 3 else PASSWORD if turn % 2 else "wrong"
            try:
                answers = [
                    ("submit", await http.post(SUBMIT, json=sheet, headers=bearer)),
                    ("metadata", await http.get("/fhir/metadata")),
                    *[("login", r) for r in await login(http, server, password)],
                ]
                if password:
                    answers.append(("token", await token_of(http, server)))
            except httpx.TransportError as error:  # not answered at all
                load.failures.append(f"{type(error).__name__}: {error}")
                continue
            for kind, response in answers:
                load.statuses[(kind, response.status_code)] += 1
                load.during_outage += outage.is_set()
            if answers[0][1].status_code == 200:
                load.settled.append(number)


async def until_answered(load: Load, count: int, seconds: float) -> None:
    """At least ``seconds`` and ``count`` answers in all (a busy machine is slow)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds or sum(load.statuses.values()) < count:
        assert time.monotonic() - started < 30, load.statuses
        await asyncio.sleep(0.1)


async def stored_numbers(http: httpx.AsyncClient, bearer: dict[str, str]) -> set[str]:
    found: set[str] = set()
    url: str | None = "/fhir/Claim?_count=200"
    while url:
        page = (await http.get(url, headers=bearer)).json()
        for entry in page.get("entry", []):
            found.update(i["value"] for i in entry["resource"]["identifier"] if i["system"] == FSE)
        url = next(
            (link["url"] for link in page.get("link", []) if link["relation"] == "next"), None
        )
    return found


async def counted(redis: OwnRedis, namespace: str, key: str) -> int:
    async with Redis.from_url(redis.url) as raw:
        names = [k async for k in raw.scan_iter(match=f"{namespace}:rate:{key}:*")]
        return sum([int(await raw.get(k) or 0) for k in names])


async def test_redis_outage_under_load(server: tuple[Server, OwnRedis]) -> None:
    running, redis = server
    async with httpx.AsyncClient(base_url=running.base, timeout=30) as http:
        token = (await token_of(http, running)).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        http.headers.update(bearer)
        refs = await load_demo(http)
        http.headers.pop("Authorization")

        load, outage, stop = Load(), asyncio.Event(), asyncio.Event()
        clients = [
            asyncio.create_task(drive(running, refs, load, outage, stop)) for _ in range(CLIENTS)
        ]
        await until_answered(load, 20, seconds=1.5)
        redis.stop()
        outage.set()
        seen_degraded = 0
        started = time.monotonic()
        while time.monotonic() - started < 3 or load.during_outage < 40:
            assert time.monotonic() - started < 30, load.statuses
            ready = await http.get("/ready")
            assert ready.status_code == 200, ready.text  # degraded, still ready
            seen_degraded += ready.json()["status"] == "warn"
            await asyncio.sleep(0.3)
        redis.start()  # same port, same data
        outage.clear()
        await until_answered(load, sum(load.statuses.values()) + 40, seconds=2.5)
        stop.set()
        await asyncio.gather(*clients)

        five_hundreds = {k: n for k, n in load.statuses.items() if k[1] >= 500}
        assert five_hundreds == {}, load.statuses
        assert load.failures == []
        assert seen_degraded > 0
        assert {s for (kind, s) in load.statuses if kind == "submit"} == {200}
        assert {s for (kind, s) in load.statuses if kind == "login"} <= {200, 303, 401}
        assert set(load.settled) <= await stored_numbers(http, bearer)  # nothing lost

        # Redis is back: both workers count in it again (fresh connections spread over them)
        await asyncio.sleep(1.5)  # at most a probe interval, and the PING, for each worker
        before = await counted(redis, running.namespace, "client:127.0.0.1")
        pids = set()
        for _ in range(30):
            async with httpx.AsyncClient(base_url=running.base, timeout=10) as fresh:
                pids.add((await fresh.get("/health")).json()["pid"])
                assert (await fresh.get("/fhir/metadata")).status_code == 200
        assert len(pids) == 2
        assert await counted(redis, running.namespace, "client:127.0.0.1") == before + 30

    # logged once per outage by each worker that saw it, not once per request
    outages = running.log.read_text().count("Redis unavailable")
    assert 1 <= outages <= 2, running.log.read_text()[-3000:]
    assert running.log.read_text().count("Redis answers again") == outages
