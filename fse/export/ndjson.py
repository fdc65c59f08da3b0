"""Write an export as NDJSON files, one resource per line, reading the store by keyset pages.

Each type is read in pages of ``page_size`` rows ordered by (last_updated, pk), the order of the
store's index (type, last_updated, pk), and every page is written out before the next is read:
memory stays flat however large the table. All types are read in one snapshot (REPEATABLE READ
on PostgreSQL, one read transaction on SQLite) so the files agree with each other. Lines are the
stored JSON text of the current version, as a read serves it; deleted resources are skipped.
A type's lines go to ``Type-1.ndjson``, then ``Type-2.ndjson`` past ``max_lines``, ...
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Select, false, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from fse.export.scope import PATIENT, PATIENT_COMPARTMENT, ExportScope
from fse.store.repository import ResourceStore
from fse.store.sealed_identifiers import SealedIdentifiers
from fse.store.tables import idx_reference, resources

Progress = Callable[[str, int], Awaitable[None]]
"""Called after each page with the type and the lines written for it so far."""


@dataclass(frozen=True)
class OutputFile:
    type: str
    name: str
    count: int


def page_query(
    scope: ExportScope, rtype: str, after: tuple[datetime, int] | None, limit: int
) -> Select[Any]:
    """One keyset page of ``rtype`` in the scope, after (last_updated, pk) ``after``."""
    r = resources
    stmt = (
        select(r.c.pk, r.c.last_updated, r.c.content)
        .where(r.c.type == rtype, r.c.deleted == false())
        .order_by(r.c.last_updated, r.c.pk)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(tuple_(r.c.last_updated, r.c.pk) > tuple_(*after))
    if scope.since is not None:
        stmt = stmt.where(r.c.last_updated > scope.since)
    if scope.level == PATIENT:
        if rtype == "Patient":
            if scope.patient_id is not None:
                stmt = stmt.where(r.c.id == scope.patient_id)
        else:
            ref = idx_reference
            refs = select(ref.c.resource_pk).where(
                ref.c.type == rtype,
                ref.c.param.in_(PATIENT_COMPARTMENT[rtype]),
                ref.c.target_type == "Patient",
            )
            if scope.patient_id is not None:
                refs = refs.where(ref.c.target_id == scope.patient_id)
            stmt = stmt.where(r.c.pk.in_(refs))
    return stmt


async def write_export(
    store: ResourceStore,
    scope: ExportScope,
    directory: Path,
    max_lines: int,
    page_size: int,
    progress: Progress | None = None,
) -> list[OutputFile]:
    """Write every type of the scope under ``directory``; types with no resource get no file."""
    directory.mkdir(parents=True, exist_ok=True)
    outputs: list[OutputFile] = []
    engine = store.engine
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            for rtype in scope.types:
                outputs += await _write_type(
                    conn, store.sealed, scope, rtype, directory, max_lines, page_size, progress
                )
    return outputs


async def _write_type(
    conn: AsyncConnection,
    sealed: SealedIdentifiers,
    scope: ExportScope,
    rtype: str,
    directory: Path,
    max_lines: int,
    page_size: int,
    progress: Progress | None,
) -> list[OutputFile]:
    files = _TypeFiles(directory, rtype, max_lines)
    after: tuple[datetime, int] | None = None
    try:
        while True:
            rows = (await conn.execute(page_query(scope, rtype, after, page_size))).all()
            if not rows:
                break
            lines = [sealed.served(row.content) or "" for row in rows]  # CINs opened, as a read
            await asyncio.to_thread(files.write, lines)
            after = (rows[-1].last_updated, rows[-1].pk)
            if progress is not None:
                await progress(rtype, files.total)
            if len(rows) < page_size:
                break
    finally:
        await asyncio.to_thread(files.close)
    return files.outputs


class _TypeFiles:
    """The files of one type, opened as lines arrive and split every ``max_lines`` lines."""

    def __init__(self, directory: Path, rtype: str, max_lines: int) -> None:
        self.directory, self.rtype, self.max_lines = directory, rtype, max_lines
        self.outputs: list[OutputFile] = []
        self.total = 0
        self._file: IO[str] | None = None
        self._lines = 0

    def write(self, lines: list[str]) -> None:
        start = 0
        while start < len(lines):
            file = self._file
            if file is None or self._lines >= self.max_lines:
                file = self._next_file()
            room = min(self.max_lines - self._lines, len(lines) - start)
            file.write("\n".join(lines[start : start + room]) + "\n")
            self._lines += room
            self.total += room
            start += room

    def _next_file(self) -> IO[str]:
        self.close()
        name = f"{self.rtype}-{len(self.outputs) + 1}.ndjson"
        self._file = (self.directory / name).open("w", encoding="utf-8")
        self._lines = 0
        self.outputs.append(OutputFile(self.rtype, name, 0))
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            last = self.outputs[-1]
            self.outputs[-1] = OutputFile(last.type, last.name, self._lines)
