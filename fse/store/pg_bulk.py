"""PostgreSQL bulk load with COPY (binary), inside the caller's transaction.

Primary keys come from the sequence first, so index rows can point at their resource without a
round trip per row. Rows are the ones every write produces (same extractor, same tables).
"""

from __future__ import annotations

from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from fse.store.indexing import INDEX_KINDS, IndexRows
from fse.store.tables import INDEX_TABLES, UtcDateTime

Prepared = tuple[str, str, str, IndexRows]
"""(resource type, id, stored JSON text, index rows)."""


def _naive(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


async def copy_bulk(conn: AsyncConnection, prepared: list[Prepared], now: datetime) -> int:
    pks = list(
        (
            await conn.execute(
                text("SELECT nextval('resources_pk_seq') FROM generate_series(1, :n)"),
                {"n": len(prepared)},
            )
        ).scalars()
    )
    raw = (await conn.get_raw_connection()).driver_connection
    at = _naive(now)
    await raw.copy_records_to_table(
        "resources",
        columns=("pk", "type", "id", "version", "last_updated", "deleted", "content"),
        records=[
            (pk, t, rid, 1, at, False, c) for pk, (t, rid, c, _) in zip(pks, prepared, strict=True)
        ],
    )
    await raw.copy_records_to_table(
        "resource_versions",
        columns=("resource_pk", "type", "id", "version", "last_updated", "method"),
        records=[  # no JSON: the current version's is in resources
            (pk, t, rid, 1, at, "POST") for pk, (t, rid, _, _) in zip(pks, prepared, strict=True)
        ],
    )
    for kind in INDEX_KINDS:
        table = INDEX_TABLES[kind]
        columns = [c.name for c in table.c if c.name != "resource_pk"]
        values = itemgetter(*columns)
        records = [
            (pk, *values(row))
            for pk, (_, _, _, index) in zip(pks, prepared, strict=True)
            for row in getattr(index, kind)
        ]
        if any(isinstance(table.c[c].type, UtcDateTime) for c in columns):
            records = [tuple(_naive(v) for v in record) for record in records]
        if records:
            await raw.copy_records_to_table(
                table.name, columns=["resource_pk", *columns], records=records
            )
    identifiers = [
        (t, system, value, pk)
        for pk, (t, _, _, index) in zip(pks, prepared, strict=True)
        for system, value in index.identifiers
    ]
    if identifiers:
        await raw.copy_records_to_table(
            "unique_identifiers",
            columns=("type", "system", "value", "resource_pk"),
            records=identifiers,
        )
    return len(pks)
