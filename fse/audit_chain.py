"""The audit trail as a hash chain: every AuditEvent, once sealed, is a link whose hash covers
its content and the link before it, so an altered, removed or reordered entry breaks the chain.

Sealing is separate from writing: features write AuditEvents in their own transactions without
waiting for each other, and the sealer (every few seconds in the server, or ``fse audit seal``)
chains the committed ones, one sealer at a time (advisory lock on PostgreSQL, the single writer
on SQLite). ``fse audit verify`` recomputes every link from the stored events. The REST API
cannot write AuditEvents (``FhirService.reserve``): the trail is append-only.

What the chain cannot show alone: the loss of its newest links together with their events. The
head hash printed by ``seal`` and ``verify`` is what to record outside the database (CNSS's log
archive) to close that gap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Integer,
    String,
    Table,
    and_,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fse.store.tables import UtcDateTime, metadata, resources

GENESIS = "0" * 64
SEAL_LOCK = 0x46534541 + 1
"""Advisory lock key: one sealer at a time (next to the approval gate's key)."""

audit_chain = Table(
    "audit_chain",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("resource_id", String(64), nullable=False, unique=True),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("chain", String(64), nullable=False),
    Column("sealed_at", UtcDateTime, nullable=False),
    CheckConstraint("seq > 0", name="ck_audit_chain_seq"),
)


def digest_of(content: str | bytes | None) -> str:
    """SHA-256 of the event in canonical JSON (keys sorted, without ``meta``)."""
    resource = orjson.loads(content or b"null") or {}
    body = {k: v for k, v in resource.items() if k != "meta"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def link(previous: str, digest: str) -> str:
    return hashlib.sha256(f"{previous}:{digest}".encode()).hexdigest()


@dataclass(frozen=True)
class Sealed:
    count: int
    head_seq: int
    head: str


RECENT = timedelta(minutes=15)
"""How far before the newest sealed event a routine seal looks for events not chained yet: an
event is written (its ``last_updated`` set) at most this long before its transaction commits."""


async def seal(
    engine: AsyncEngine,
    batch: int = 2000,
    now: datetime | None = None,
    within: timedelta | None = None,
) -> Sealed:
    """Chain every committed AuditEvent not chained yet, oldest first. ``within`` (the
    server's rounds): only those written at most that long before the newest sealed one, so a
    round costs the same on the millionth event as on the first; None (``fse audit seal``, the
    server's first and hourly rounds) looks at all of them."""
    sealed = 0
    while True:
        async with engine.connect() as conn:
            await conn.execution_options(fse_write=True)  # SQLite: BEGIN IMMEDIATE
            async with conn.begin():
                rows, head_seq, head = await _seal_batch(
                    conn, batch, now or datetime.now(UTC), within
                )
        sealed += len(rows)
        if len(rows) < batch:
            return Sealed(sealed, head_seq, head)


async def _seal_batch(
    conn: AsyncConnection, batch: int, now: datetime, within: timedelta | None
) -> tuple[list[object], int, str]:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEAL_LOCK})
    head_seq, head, newest = await _head(conn)
    unsealed = (
        select(resources.c.id, resources.c.version, resources.c.content)
        .outerjoin(audit_chain, audit_chain.c.resource_id == resources.c.id)
        .where(resources.c.type == "AuditEvent", audit_chain.c.seq.is_(None))
        .order_by(resources.c.last_updated, resources.c.id)
        .limit(batch)
    )
    if within is not None and newest is not None:
        unsealed = unsealed.where(resources.c.last_updated >= newest - within)
    rows = (await conn.execute(unsealed)).all()
    values = []
    for row in rows:
        digest = digest_of(row.content)
        head_seq, head = head_seq + 1, link(head, digest)
        values.append(
            {
                "seq": head_seq,
                "resource_id": row.id,
                "version": row.version,
                "digest": digest,
                "chain": head,
                "sealed_at": now,
            }
        )
    if values:
        await conn.execute(insert(audit_chain), values)
    return list(rows), head_seq, head


async def _head(conn: AsyncConnection) -> tuple[int, str, datetime | None]:
    """The newest link, and when its event was written (None: its event is gone)."""
    row = (
        await conn.execute(
            select(audit_chain.c.seq, audit_chain.c.chain, resources.c.last_updated)
            .outerjoin(
                resources,
                and_(resources.c.type == "AuditEvent", resources.c.id == audit_chain.c.resource_id),
            )
            .order_by(audit_chain.c.seq.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return 0, GENESIS, None
    return int(row.seq), str(row.chain), row.last_updated


@dataclass
class Verified:
    links: int = 0
    head: str = GENESIS
    unsealed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(
    engine: AsyncEngine, batch: int = 5000, progress: Callable[[int], None] | None = None
) -> Verified:
    """Walk the chain from its first link: contiguous numbers, each link recomputed from the
    previous one and from the event as stored now, every event still there and unchanged."""
    report = Verified()
    expected_seq, previous = 1, GENESIS
    async with engine.connect() as conn:
        while True:
            rows = (
                await conn.execute(
                    select(
                        audit_chain,
                        resources.c.version.label("stored_version"),
                        resources.c.deleted,
                        resources.c.content,
                    )
                    .outerjoin(
                        resources,
                        and_(
                            resources.c.type == "AuditEvent",
                            resources.c.id == audit_chain.c.resource_id,
                        ),
                    )
                    .where(audit_chain.c.seq >= expected_seq)
                    .order_by(audit_chain.c.seq)
                    .limit(batch)
                )
            ).all()
            for row in rows:
                _check(row, expected_seq, previous, report)
                expected_seq, previous = int(row.seq) + 1, str(row.chain)
                report.links += 1
            if progress:
                progress(report.links)
            if len(rows) < batch or len(report.problems) >= 50:
                break
        report.head = previous
        report.unsealed = int(
            await conn.scalar(
                select(func.count())
                .select_from(
                    resources.outerjoin(audit_chain, audit_chain.c.resource_id == resources.c.id)
                )
                .where(resources.c.type == "AuditEvent", audit_chain.c.seq.is_(None))
            )
            or 0
        )
    return report


def _check(row: Any, expected_seq: int, previous: str, report: Verified) -> None:
    seq, event = int(row.seq), f"AuditEvent/{row.resource_id}"
    if seq != expected_seq:
        report.problems.append(f"links {expected_seq}..{seq - 1} are missing (removed)")
    if link(previous, row.digest) != row.chain:
        report.problems.append(f"link {seq} ({event}): hash does not follow the chain")
    if row.content is None or row.deleted:
        report.problems.append(f"link {seq}: {event} was removed")
    elif row.stored_version != row.version or digest_of(row.content) != row.digest:
        report.problems.append(f"link {seq}: {event} was altered after it was sealed")
