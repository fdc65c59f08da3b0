"""A real `fse serve --workers 2` on PostgreSQL under load: a worker killed mid-load loses no
answered request's AuditEvent, and a PostgreSQL restart answers a clean 503 while it is down,
then everything works at once, with no claim lost."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import select

from bench.harness import listening_sockets
from fse.config import Settings
from fse.crypto.cin import vault_for
from fse.crypto.tokens import issue, load_or_create_key
from fse.db import create_engine
from fse.errors import ErrorCode
from fse.security.clients import create_client
from fse.store.tables import resources
from reimbursement.tables import settlements
from tests.fse.fhir_api.test_errors import assert_outcome
from tests.fse.test_serve import wait_for, worker_pids
from tests.reimbursement.demo import FATIMA, act, claim, load_demo
from tests.services import (
    create_pg_database,
    drop_pg_database,
    free_port,
    migrate_async,
    server_env,
)

SUBMIT = "/fhir/Claim/$submit"
AUDIENCE = "urn:fse:fhir"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    url: str
    """The database, SQLAlchemy async URL."""
    token: str

    def client(self, timeout: float = 10) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )

    def stop(self) -> None:
        """SIGTERM: the workers finish, store what the access log holds, and exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


@asynccontextmanager
async def served(url: str, tmp: Path, workers: int = 2) -> AsyncIterator[Server]:
    port = free_port()
    env = server_env(  # no Redis
        url,
        tmp,
        FSE_PORT=str(port),
        FSE_PAYMENT_SCHEDULE="false",
        FSE_RATE_LIMIT_PER_MINUTE="0",
        FSE_RATE_LIMIT_PER_SYSTEM_CLIENT="0",
        FSE_RATE_LIMIT_PER_USER="0",
        FSE_DB_POOL_SIZE="5",
    )
    key = load_or_create_key(Path(env["FSE_SIGNING_KEY_FILE"]))  # made once, before the workers
    vault_for(Settings(cin_key_file=Path(env["FSE_CIN_KEY_FILE"])))
    engine = create_engine(url)
    try:
        client, _secret = await create_client(
            engine, f"load-{uuid.uuid4().hex[:6]}", "system/*.cruds"
        )
    finally:
        await engine.dispose()
    claims = {"iss": AUDIENCE, "aud": AUDIENCE, "sub": client.client_id, "scope": "system/*.cruds"}
    command = [sys.executable, "-m", "fse.cli", "serve", "--workers", str(workers), "--quiet"]
    process = subprocess.Popen(command, env=env)
    server = Server(process, port, url, issue(key, claims, 3600))
    try:
        assert await asyncio.to_thread(wait_for, lambda: listening_sockets(port) == workers, 60)
        yield server
    finally:
        server.stop()


@dataclass
class Load:
    """What the clients asked and what they were answered."""

    submitted: dict[str, int] = field(default_factory=dict)
    """Care-sheet number -> status (0: no answer, the connection broke)."""
    claims: dict[str, str] = field(default_factory=dict)
    """Care-sheet number -> Claim/<id>, for the 200 answers."""
    reads: dict[str, int] = field(default_factory=dict)
    """Claim/<id> read -> status."""
    failures: list[tuple[float, int, bytes, str | None]] = field(default_factory=list)
    """Answers other than 200: (when, status, body, Retry-After)."""

    def note(self, answer: httpx.Response) -> None:
        if answer.status_code != 200:
            retry_after = answer.headers.get("retry-after")
            self.failures.append(
                (time.monotonic(), answer.status_code, answer.content, retry_after)
            )


async def submit_and_read(http: httpx.AsyncClient, refs: dict[str, str], load: Load) -> list[int]:
    """A $submit, then a read of the claim it stored; the statuses answered."""
    sheet = claim(refs, FATIMA, [act("C", "80.00")])
    number = sheet["identifier"][0]["value"]
    load.submitted[number] = 0
    answer = await http.post(SUBMIT, json=sheet)
    load.submitted[number] = answer.status_code
    load.note(answer)
    if answer.status_code != 200:
        return [answer.status_code]
    reference = answer.json()["request"]["reference"]
    load.claims[number] = reference
    load.reads[reference] = 0
    read = await http.get(f"/fhir/{reference}")
    load.reads[reference] = read.status_code
    load.note(read)
    return [200, read.status_code]


async def stored(url: str) -> tuple[set[str], list[dict]]:
    """(Claim/<id> of every settlement, every AuditEvent)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            settled = {f"Claim/{i}" for i in (await conn.scalars(select(settlements.c.claim_id)))}
            contents = await conn.scalars(
                select(resources.c.content).where(resources.c.type == "AuditEvent")
            )
            events = [orjson.loads(content) for content in contents]
    finally:
        await engine.dispose()
    return settled, events


def audited(events: list[dict], interaction: str) -> list[list[dict]]:
    """The entities' ``what`` of each API event of that restful interaction."""
    return [
        [entity["what"] for entity in event["entity"]]
        for event in events
        if event["subtype"][0]["code"] == interaction
    ]


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    url = await create_pg_database()
    await migrate_async(url)
    yield url
    await drop_pg_database(url)


async def test_a_worker_killed_under_load_loses_no_answered_requests_audit_event(
    pg_url: str, tmp_path: Path
) -> None:
    load, lost = Load(), 0
    async with served(pg_url, tmp_path) as server:
        async with server.client() as setup:
            refs = await load_demo(setup)
        killed = asyncio.Event()

        async def client_loop(rounds: int) -> None:
            nonlocal lost
            for _ in range(rounds):
                async with server.client() as http:  # a new connection: spread over workers
                    try:
                        await submit_and_read(http, refs, load)
                    except httpx.TransportError:
                        lost += 1  # in flight on the killed worker: no answer at all

        async def killer() -> None:
            await asyncio.to_thread(wait_for, lambda: len(load.claims) >= 15, 60)
            victim = worker_pids(server.process.pid)[0]  # a worker, not the master
            os.kill(victim, signal.SIGKILL)
            killed.set()

        await asyncio.gather(killer(), *(client_loop(12) for _ in range(6)))
        assert killed.is_set()
        server.stop()

    settled, events = await stored(pg_url)
    answered = {number: ref for number, ref in load.claims.items()}
    assert len(answered) >= 50, (len(answered), lost, load.failures[:3])
    assert lost <= 12  # in flight on the killed worker, or queued to its socket
    assert [f[1] for f in load.failures if f[1] >= 500] == []  # never a 5xx
    # Every 200 $submit is settled, and audited exactly once, naming its claim and number.
    assert set(answered.values()) <= settled
    assert len(settled - set(answered.values())) <= lost
    submits = {
        entities[1]["identifier"]["value"]: entities
        for entities in audited(events, "operation")
        if len(entities) == 3
    }
    assert len(audited(events, "operation")) >= len(answered)
    for number, reference in answered.items():
        assert submits[number][:2] == [
            {"reference": refs[FATIMA]},
            {"reference": reference, "identifier": submits[number][1]["identifier"]},
        ]
    # Every answered read of a claim is audited too.
    reads = {entities[-1]["display"] for entities in audited(events, "read")}
    answered_reads = {ref for ref, status in load.reads.items() if status == 200}
    assert answered_reads <= reads


PG_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


@contextmanager
def private_cluster() -> Iterator[tuple[int, list[str]]]:
    """A PostgreSQL cluster of our own (initdb in a temporary directory, another port): the
    shared server at 5432 is never touched. Yields (port, the pg_ctl command to add a verb to)."""
    bin_dir = PG_BINARIES[-1].parent
    root = Path(tempfile.mkdtemp(prefix="fse-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as postgres
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = root / "data"
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log")]
    subprocess.run([*pg_ctl, "-o", options, "-w", "start"], check=True, timeout=60)
    try:
        yield port, [*pg_ctl, "-o", options, "-w"]
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(not PG_BINARIES, reason="PostgreSQL server binaries are not installed")
async def test_a_postgresql_restart_answers_503_then_works_at_once_losing_no_claim(
    tmp_path: Path,
) -> None:
    with private_cluster() as (port, pg_ctl):
        admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        await admin.execute("CREATE DATABASE fse")
        await admin.close()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/fse"
        await migrate_async(url)
        load, lost = Load(), 0
        phase = {"name": "up"}
        statuses: dict[str, list[int]] = {"up": [], "down": [], "back": [], "again": []}

        async with served(url, tmp_path) as server:
            async with server.client() as setup:
                refs = await load_demo(setup)
            stop = asyncio.Event()

            async def client_loop() -> None:
                nonlocal lost
                async with server.client(timeout=15) as http:
                    while not stop.is_set():
                        began = phase["name"]
                        if began == "paused":
                            await asyncio.sleep(0.05)
                            continue
                        try:
                            answered = await submit_and_read(http, refs, load)
                        except httpx.TransportError:
                            lost += 1
                            continue
                        # Begun and answered while up (or back), or it saw the outage.
                        statuses[began if began == phase["name"] else "down"].extend(answered)
                        if began == "down":
                            await asyncio.sleep(0.05)

            async def operator() -> None:
                await asyncio.sleep(1.5)
                phase["name"] = "down"
                await asyncio.to_thread(subprocess.run, [*pg_ctl, "-m", "fast", "stop"], check=True)
                await asyncio.sleep(2)
                await asyncio.to_thread(subprocess.run, [*pg_ctl, "start"], check=True)
                phase["name"] = "back"  # every request started from now on must succeed
                await asyncio.sleep(2)
                # A restart no request sees: the pools hold connections the server closed.
                phase["name"] = "paused"
                await asyncio.sleep(0.5)
                await asyncio.to_thread(
                    subprocess.run, [*pg_ctl, "-m", "fast", "restart"], check=True
                )
                phase["name"] = "again"
                await asyncio.sleep(1.5)
                stop.set()

            await asyncio.gather(operator(), *(client_loop() for _ in range(4)))
            server.stop()
        settled, _events = await stored(url)

    assert lost == 0
    assert statuses["up"] and set(statuses["up"]) == {200}
    assert statuses["down"] and set(statuses["down"]) <= {200, 503}
    assert 503 in statuses["down"]
    assert statuses["back"] and set(statuses["back"]) == {200}, statuses["back"]
    assert statuses["again"] and set(statuses["again"]) == {200}, statuses["again"]
    for _when, status, body, retry_after in load.failures:
        assert status == 503 and retry_after is not None
        outcome = httpx.Response(
            503, content=body, headers={"content-type": "application/fhir+json"}
        )
        assert_outcome(outcome, 503, ErrorCode.DATABASE_UNAVAILABLE)
    assert {ref for ref in load.claims.values()} <= settled  # every 200 $submit is stored
