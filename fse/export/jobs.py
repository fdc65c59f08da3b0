"""Export jobs as rows: who asked for what, how far it got, and its files once done.

A job is ``running`` from its kick-off, then ``completed`` (``output`` holds the manifest's
files as JSON) or ``failed`` (``error`` says why). The task writing it beats ``heartbeat_at``
after every page; a running job whose heartbeat is older than ``STALE_AFTER`` lost its server
(a restart or a crash) and is marked failed when next looked at: start it again. A deleted job
has no row, which is also how a task in another worker learns it was cancelled.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Column, Index, String, Table, Text, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fse.export.ndjson import OutputFile
from fse.export.scope import ExportScope
from fse.store.tables import UtcDateTime, metadata

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
STALE_AFTER = timedelta(minutes=2)
INTERRUPTED = (
    "export interrompu (redémarrage ou arrêt du serveur) avant la fin ; "
    "aucun fichier n'est conservé : relancez l'export"
)

export_jobs = Table(
    "export_jobs",
    metadata,
    Column("job_id", String(32), primary_key=True),
    Column("owner", String(140), nullable=False),
    Column("request_url", Text, nullable=False),
    Column("level", String(8), nullable=False),
    Column("patient", String(64), nullable=True),
    Column("types", Text, nullable=False),
    Column("since", UtcDateTime, nullable=True),
    Column("status", String(16), nullable=False),
    Column("progress", String(200), nullable=False),
    Column("output", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
    Column("transaction_time", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Index("ix_export_jobs_status", "status", "heartbeat_at"),
)


@dataclass(frozen=True)
class ExportJob:
    job_id: str
    owner: str
    request_url: str
    scope: ExportScope
    status: str
    progress: str
    outputs: tuple[OutputFile, ...]
    error: str | None
    transaction_time: datetime
    heartbeat_at: datetime


def _job(row: Any) -> ExportJob:
    outputs = tuple(OutputFile(**o) for o in orjson.loads(row.output)) if row.output else ()
    scope = ExportScope(tuple(row.types.split(",")), row.since, row.level, row.patient)
    return ExportJob(
        row.job_id,
        row.owner,
        row.request_url,
        scope,
        row.status,
        row.progress,
        outputs,
        row.error,
        row.transaction_time,
        row.heartbeat_at,
    )


async def _write(engine: AsyncEngine, statement: Any) -> int:
    async with engine.connect() as conn:
        await conn.execution_options(fse_write=True)
        async with conn.begin():
            return (await conn.execute(statement)).rowcount


async def create_job(
    conn: AsyncConnection, owner: str, request_url: str, scope: ExportScope
) -> ExportJob:
    """Record a new running job inside the caller's transaction (with its AuditEvent)."""
    now = datetime.now(UTC)
    values = {
        "job_id": secrets.token_hex(16),
        "owner": owner,
        "request_url": request_url,
        "level": scope.level,
        "patient": scope.patient_id,
        "types": ",".join(scope.types),
        "since": scope.since,
        "status": RUNNING,
        "progress": "en attente",
        "created_at": now,
        "heartbeat_at": now,
        "transaction_time": now,
    }
    await conn.execute(insert(export_jobs).values(**values))
    return ExportJob(
        values["job_id"], owner, request_url, scope, RUNNING, "en attente", (), None, now, now
    )


async def find_job(engine: AsyncEngine, job_id: str, owner: str) -> ExportJob | None:
    """The owner's job (None for anyone else's: they must not learn it exists); a running job
    whose task stopped beating is marked failed first."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(export_jobs).where(
                    export_jobs.c.job_id == job_id, export_jobs.c.owner == owner
                )
            )
        ).first()
        await conn.rollback()
    if row is None:
        return None
    job = _job(row)
    if job.status == RUNNING and job.heartbeat_at < datetime.now(UTC) - STALE_AFTER:
        await fail_job(engine, job_id, INTERRUPTED)
        return await find_job(engine, job_id, owner)
    return job


async def beat(engine: AsyncEngine, job_id: str, progress: str) -> bool:
    """Record progress; False when the job is no longer running (deleted meanwhile)."""
    statement = (
        update(export_jobs)
        .where(export_jobs.c.job_id == job_id, export_jobs.c.status == RUNNING)
        .values(progress=progress[:200], heartbeat_at=datetime.now(UTC))
    )
    return await _write(engine, statement) == 1


async def complete_job(engine: AsyncEngine, job_id: str, outputs: list[OutputFile]) -> bool:
    """Publish the files; False when the job was deleted meanwhile."""
    output = orjson.dumps([o.__dict__ for o in outputs]).decode()
    now = datetime.now(UTC)
    statement = (
        update(export_jobs)
        .where(export_jobs.c.job_id == job_id, export_jobs.c.status == RUNNING)
        .values(status=COMPLETED, output=output, finished_at=now, heartbeat_at=now)
    )
    return await _write(engine, statement) == 1


async def fail_job(engine: AsyncEngine, job_id: str, error: str) -> None:
    now = datetime.now(UTC)
    statement = (
        update(export_jobs)
        .where(export_jobs.c.job_id == job_id, export_jobs.c.status == RUNNING)
        .values(status=FAILED, error=error, finished_at=now, heartbeat_at=now)
    )
    await _write(engine, statement)


async def fail_stale_jobs(engine: AsyncEngine) -> int:
    """At startup: running jobs nobody beats for anymore were interrupted; say so."""
    now = datetime.now(UTC)
    statement = (
        update(export_jobs)
        .where(export_jobs.c.status == RUNNING, export_jobs.c.heartbeat_at < now - STALE_AFTER)
        .values(status=FAILED, error=INTERRUPTED, finished_at=now)
    )
    return await _write(engine, statement)


async def delete_job(engine: AsyncEngine, job_id: str) -> None:
    await _write(engine, delete(export_jobs).where(export_jobs.c.job_id == job_id))
