"""Key rotation of the sealed CINs (``fse cin rotate``): every stored CIN under the current key.

Walks the current rows and every history version that mention the CIN system, in batches of
one short transaction each with keyset paging on the primary key, and writes back only the rows
holding a CIN under another key or in clear (data stored before sealing existed). Then blinds
index rows and identifier claims still holding a clear CIN. Re-running it does nothing more, and
an interrupted run resumes by running it again. Servers keep reading during the rotation: each
sealed value names its key, and the old key stays configured until the rotation is done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, Text, and_, cast, select, update

from fhir_profiles.systems import CIN_SYSTEM
from fse.crypto.cin import BLIND_PREFIX
from fse.store.repository import ResourceStore
from fse.store.tables import idx_token, resource_versions, resources, unique_identifiers

Progress = Callable[[str, int, int], None]
"""(table, rows examined so far, rows rewritten so far)."""


@dataclass
class Rotation:
    examined: dict[str, int] = field(default_factory=dict)
    rewritten: dict[str, int] = field(default_factory=dict)

    @property
    def total_rewritten(self) -> int:
        return sum(self.rewritten.values())


def _quiet(_table: str, _examined: int, _rewritten: int) -> None:
    pass


async def rotate_cin(
    store: ResourceStore, batch: int = 500, progress: Progress = _quiet
) -> Rotation:
    rotation = Rotation()
    for table in (resources, resource_versions):
        await _reseal(store, table, batch, rotation, progress)
    await _blind(store, idx_token, idx_token.c.code, batch, rotation, progress)
    await _blind(store, unique_identifiers, unique_identifiers.c.value, batch, rotation, progress)
    return rotation


def _mentions_cin(table: Table) -> Any:
    return cast(table.c.content, Text).like(f"%{CIN_SYSTEM}%")


async def _reseal(
    store: ResourceStore, table: Table, batch: int, rotation: Rotation, progress: Progress
) -> None:
    after, examined, rewritten = 0, 0, 0
    current = table is resources
    columns = [table.c.pk, table.c.content, *([table.c.version] if current else [])]
    while True:
        async with store.transaction() as conn:
            stmt = (
                select(*columns)
                .where(table.c.pk > after, _mentions_cin(table))
                .order_by(table.c.pk)
                .limit(batch)
            )
            rows = (await conn.execute(stmt.with_for_update() if current else stmt)).all()
            for row in rows:
                resealed = store.sealed.resealed(row.content)
                if resealed is None:
                    continue
                where = table.c.pk == row.pk
                if current:  # a version written meanwhile is already under the current key
                    where = and_(where, table.c.version == row.version)
                await conn.execute(update(table).where(where).values(content=resealed))
                rewritten += 1
        if not rows:
            break
        after, examined = rows[-1].pk, examined + len(rows)
        progress(table.name, examined, rewritten)
    rotation.examined[table.name], rotation.rewritten[table.name] = examined, rewritten


def _clear(column: Any) -> Any:
    return ~column.startswith(BLIND_PREFIX, autoescape=True)


async def _blind(
    store: ResourceStore,
    table: Table,
    column: Any,
    batch: int,
    rotation: Rotation,
    progress: Progress,
) -> None:
    """Replace each clear CIN left in ``column`` (index tokens, identifier claims) by its blind
    index, one distinct value at a time: every row holding it gets the same blind value."""
    done = 0
    while True:
        async with store.transaction() as conn:
            values = (
                (
                    await conn.execute(
                        select(column)
                        .where(table.c.system == CIN_SYSTEM, _clear(column))
                        .distinct()
                        .limit(batch)
                    )
                )
                .scalars()
                .all()
            )
            for value in values:
                blind = store.sealed.vault.blind(value)
                changed = await conn.execute(
                    update(table)
                    .where(table.c.system == CIN_SYSTEM, column == value)
                    .values({column.name: blind})
                )
                done += changed.rowcount
        if not values:
            break
        progress(table.name, done, done)
    rotation.examined[table.name] = rotation.rewritten[table.name] = done
