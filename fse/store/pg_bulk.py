"""PostgreSQL bulk load with COPY (binary), inside the caller's transaction.

Primary keys come from the sequence first, so index rows can point at their resource without a
round trip per row. Rows are the ones every write produces (same extractor, same tables).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from fse.store.indexing import IndexRows

Prepared = tuple[str, str, str, IndexRows]
"""(resource type, id, stored JSON text, index rows)."""

INDEX_COLUMNS = {
    "idx_token": ("token", ("system", "code")),
    "idx_string": ("string", ("value", "exact")),
    "idx_date": ("date", ("low", "high")),
    "idx_reference": ("reference", ("target_type", "target_id")),
    "idx_quantity": ("quantity", ("value", "system", "code")),
}


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
        columns=("resource_pk", "type", "id", "version", "last_updated", "method", "content"),
        records=[
            (pk, t, rid, 1, at, "POST", c) for pk, (t, rid, c, _) in zip(pks, prepared, strict=True)
        ],
    )
    for table, (kind, columns) in INDEX_COLUMNS.items():
        records = [
            (pk, row["type"], row["param"], *(_naive(row[c]) for c in columns))
            for pk, (_, _, _, index) in zip(pks, prepared, strict=True)
            for row in getattr(index, kind)
        ]
        if records:
            await raw.copy_records_to_table(
                table, columns=("resource_pk", "type", "param", *columns), records=records
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
