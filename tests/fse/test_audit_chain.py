"""The audit trail is append-only and hash-chained: any altered, removed or dropped entry shows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, select, update

from fse import app as app_module
from fse.api_audit import ApiAudit
from fse.app import seal_periodically
from fse.audit import audit_read
from fse.audit_chain import GENESIS, RECENT, audit_chain, link, seal, verify
from fse.store.tables import resources
from tests.conftest import Platform
from tests.fse.test_cli import fse


async def read_by(platform: Platform, who: str) -> None:
    await audit_read(platform.app.state.fhir, who, ["p1"], "consultation", "test")


async def test_sealed_events_verify_and_the_chain_grows(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    for n in range(3):
        await read_by(platform, f"Practitioner/{n}")
    first = await seal(platform.engine)
    assert (first.count, first.head_seq) == (3, 3)
    report = await verify(platform.engine)
    assert report.ok and report.links == 3 and report.unsealed == 0
    assert report.head == first.head
    assert (await seal(platform.engine)).count == 0  # nothing new: the head stays
    await read_by(platform, "Practitioner/late")
    assert (await verify(platform.engine)).unsealed == 1
    second = await seal(platform.engine)
    assert (second.count, second.head_seq) == (1, 4) and second.head != first.head
    async with platform.engine.connect() as conn:
        rows = (await conn.execute(select(audit_chain).order_by(audit_chain.c.seq))).all()
    previous = GENESIS
    for row in rows:  # each link is the hash of the previous one and of its event
        assert row.chain == link(previous, row.digest)
        previous = row.chain
    assert (await verify(platform.engine)).ok


async def unsealed_ids(platform: Platform) -> list[str]:
    async with platform.engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    select(resources.c.id)
                    .outerjoin(audit_chain, audit_chain.c.resource_id == resources.c.id)
                    .where(resources.c.type == "AuditEvent", audit_chain.c.seq.is_(None))
                )
            ).scalars()
        )


async def test_a_routine_seal_looks_at_recent_events_and_a_sweep_at_all_of_them(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """The server's rounds cost the same on the millionth event as on the first (they look
    RECENT back from the newest sealed one, an anti-join over every event did not); an event
    whose transaction committed later than that is chained by the next full sweep."""
    await read_by(platform, "Practitioner/first")
    assert (await seal(platform.engine, within=RECENT)).count == 1  # nothing sealed yet: all
    await read_by(platform, "Practitioner/straggler")
    (straggler,) = await unsealed_ids(platform)
    async with platform.engine.begin() as conn:  # written long before its commit
        await conn.execute(
            update(resources)
            .where(resources.c.type == "AuditEvent", resources.c.id == straggler)
            .values(last_updated=datetime.now(UTC) - 2 * RECENT)
        )
    await read_by(platform, "Practitioner/next")
    assert (await seal(platform.engine, within=RECENT)).count == 1  # the recent one only
    assert await unsealed_ids(platform) == [straggler]
    assert (await verify(platform.engine)).unsealed == 1
    swept = await seal(platform.engine)
    assert (swept.count, swept.head_seq) == (1, 3)
    report = await verify(platform.engine)
    assert report.ok and report.links == 3 and report.unsealed == 0


async def test_the_sealer_sweeps_all_events_first_then_once_an_hour(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[timedelta | None] = []

    async def recorded(engine: object, within: timedelta | None = None) -> None:
        rounds.append(within)

    monkeypatch.setattr(app_module, "seal", recorded)

    async def loop_for_a_while() -> list[timedelta | None]:
        rounds.clear()
        sealer = asyncio.create_task(seal_periodically(platform.engine, 0.01))
        await asyncio.sleep(0.3)
        sealer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sealer
        return list(rounds)

    first = await loop_for_a_while()
    assert first[0] is None and len(first) > 3 and set(first[1:]) == {RECENT}
    monkeypatch.setattr(app_module, "SWEEP_EVERY_SECONDS", 0.05)
    assert None in (await loop_for_a_while())[1:]  # swept again once the hour is up


async def test_an_altered_a_removed_and_a_dropped_entry_are_each_reported(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    for n in range(5):
        await read_by(platform, f"Practitioner/{n}")
    await seal(platform.engine)
    async with platform.engine.connect() as conn:
        chain = (await conn.execute(select(audit_chain).order_by(audit_chain.c.seq))).all()
        stored = await conn.scalar(
            select(resources.c.content).where(resources.c.id == chain[1].resource_id)
        )
    altered = str(stored).replace("Practitioner/1", "Practitioner/someone-else")
    async with platform.engine.begin() as conn:
        await conn.execute(
            update(resources).where(resources.c.id == chain[1].resource_id).values(content=altered)
        )
        await conn.execute(
            update(resources)
            .where(resources.c.id == chain[2].resource_id)
            .values(deleted=True, content=None)
        )
        await conn.execute(delete(audit_chain).where(audit_chain.c.seq == 4))
    report = await verify(platform.engine)
    assert not report.ok
    assert report.problems == [
        f"link 2: AuditEvent/{chain[1].resource_id} was altered after it was sealed",
        f"link 3: AuditEvent/{chain[2].resource_id} was removed",
        "links 4..4 are missing (removed)",
        f"link 5 (AuditEvent/{chain[4].resource_id}): hash does not follow the chain",
    ]


async def test_the_rest_api_cannot_write_the_audit_trail(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    await read_by(platform, "Practitioner/x")
    event = (await client.get("/fhir/AuditEvent")).json()["entry"][0]["resource"]
    before = await platform.row_counts()
    raw = {k: v for k, v in event.items() if k not in ("id", "meta")}
    for answer in (
        await client.post("/fhir/AuditEvent", json=raw),
        await client.put(f"/fhir/AuditEvent/{event['id']}", json=event),
        await client.delete(f"/fhir/AuditEvent/{event['id']}"),
    ):
        assert answer.status_code == 405, answer.text
        assert "append-only" in answer.json()["issue"][0]["diagnostics"]
    assert await platform.row_counts() == before


def test_fse_audit_seal_and_verify_as_commands(tmp_path: Path) -> None:
    database = tmp_path / "audit.sqlite3"
    assert fse("migrate", database=database).returncode == 0
    assert fse("seed", "--demo", database=database).returncode == 0
    sealed = fse("audit", "seal", database=database)
    assert sealed.returncode == 0 and "event(s) sealed" in sealed.stdout
    with closing(sqlite3.connect(database)) as db, db:
        db.execute(
            "INSERT INTO resources (type, id, version, last_updated, deleted, content) "
            "VALUES ('AuditEvent', 'a1', 1, '2026-11-29 10:00:00', 0, "
            '\'{"resourceType": "AuditEvent", "action": "R"}\')'
        )
    assert fse("audit", "seal", database=database).stdout.startswith("audit: 1 event(s) sealed")
    verified = fse("audit", "verify", database=database)
    assert verified.returncode == 0 and "audit chain intact: 1 links" in verified.stdout
    with closing(sqlite3.connect(database)) as db, db:
        db.execute(
            'UPDATE resources SET content = \'{"resourceType": "AuditEvent", "action": "D"}\''
            " WHERE id = 'a1'"
        )
    broken = fse("audit", "verify", database=database)
    assert broken.returncode == 1 and "AuditEvent/a1 was altered" in broken.stdout


def test_fse_audit_seal_first_stores_what_a_stopped_server_left_in_the_access_log(
    tmp_path: Path,
) -> None:
    """A server stopped before its flush leaves access-log rows: sealing must not skip them."""
    database = tmp_path / "audit.sqlite3"
    assert fse("migrate", database=database).returncode == 0
    draft = ApiAudit(None, "Africa/Casablanca").draft(  # type: ignore[arg-type]
        "cnss-si", "GET", "/fhir/Patient/p1", "", 200, datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    )
    with closing(sqlite3.connect(database)) as db, db:
        db.execute("INSERT INTO api_access_log (draft) VALUES (?)", (json.dumps(draft),))
    sealed = fse("audit", "seal", database=database)
    assert sealed.returncode == 0, sealed.stderr
    assert "audit: 1 access-log record(s) stored as AuditEvents" in sealed.stdout
    assert "audit: 1 event(s) sealed" in sealed.stdout
    with closing(sqlite3.connect(database)) as db, db:
        assert db.execute("SELECT count(*) FROM api_access_log").fetchone() == (0,)
        (content,) = db.execute(
            "SELECT content FROM resources WHERE type = 'AuditEvent'"
        ).fetchone()
    event = json.loads(content)
    assert event["entity"][0]["what"]["reference"] == "Patient/p1"
    assert "03/12/2026 à 10:00" in event["text"]["div"]
