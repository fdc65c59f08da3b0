"""PostgreSQL: one row, the rows that hang from it and rows beside it, written as ONE statement
of data-modifying CTEs.

A round trip through the driver costs ~0.3 ms of latency and, with SQLAlchemy around it, about
as much CPU as the Python a settlement needs: a settlement's row, its lines, its holds, its
ledger journal and its events were five INSERTs, they are one. The SQL is built once per
shape from the tables' own columns; rows are bound as one array per column (``unnest``), so
the statement stays the same whatever the number of rows and is prepared once per connection.
SQLite runs the same rows as one INSERT per table (``insert_one_by_one``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, TextClause, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from fse.store.tables import UtcDateTime

_PG = postgresql.dialect()


def _sql_type(table: Table, column: str) -> str:
    return str(table.c[column].type.compile(dialect=_PG))


def _bound(table: Table, column: str, row: Mapping[str, Any]) -> Any:
    """What SQLAlchemy would have bound for the row's value: the column's scalar default when
    the row has none, naive UTC for ``UtcDateTime``."""
    declared = table.c[column]
    if column in row:
        value = row[column]
    else:
        default = declared.default
        value = default.arg if default is not None and default.is_scalar else None  # type: ignore[attr-defined]
    if isinstance(declared.type, UtcDateTime) and isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _columns(table: Table, *left_out: str) -> list[str]:
    return [c.name for c in table.c if c.name != "pk" and c.name not in left_out]


@dataclass(frozen=True)
class Chain:
    """``parent``'s row (its ``pk`` returned), rows of each ``children`` table pointing at it
    by their named column, rows of each ``beside`` table. ``tallies``: tables of counters with
    their key columns; a row adds its other columns to the row of its key, made if missing
    (the caller gives one row per key, sorted by key, so that writers lock in one order).
    ``computed``: parent columns given as SQL instead of a value (their binds named in the
    SQL), e.g. a number drawn from a sequence under a lock."""

    parent: Table
    children: tuple[tuple[Table, str], ...] = ()
    beside: tuple[Table, ...] = ()
    tallies: tuple[tuple[Table, tuple[str, ...]], ...] = ()
    computed: Mapping[str, str] = field(default_factory=dict)
    sql: TextClause = field(init=False)
    bound: tuple[tuple[Table, tuple[str, ...]], ...] = field(init=False)
    """Each child and beside table with the columns its rows bind (not its key), once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sql", text(self._build()))
        tables = [*self.children, *((t, None) for t in (*self.beside, *self.tables_tallied))]
        bound = tuple((t, tuple(_columns(t, *([k] if k else [])))) for t, k in tables)
        object.__setattr__(self, "bound", bound)

    def _build(self) -> str:
        own = _columns(self.parent)
        values = [self.computed.get(c, f":p_{c}") for c in own]
        parts = [
            f"p AS (INSERT INTO {self.parent.name} ({', '.join(own)})"
            f" VALUES ({', '.join(values)}) RETURNING pk)"
        ]
        for i, (table, key) in enumerate(self.children):
            parts.append(f"c{i} AS ({self._rows(table, key)})")
        for i, table in enumerate(self.beside):
            parts.append(f"b{i} AS ({self._rows(table, None)})")
        for i, (table, keys) in enumerate(self.tallies):
            added = ", ".join(
                f"{c} = {table.name}.{c} + EXCLUDED.{c}" for c in _columns(table, *keys)
            )
            parts.append(
                f"t{i} AS ({self._rows(table, None)}"
                f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added})"
            )
        return f"WITH {', '.join(parts)} SELECT pk FROM p"

    @property
    def tables_tallied(self) -> tuple[Table, ...]:
        return tuple(table for table, _ in self.tallies)

    @staticmethod
    def _rows(table: Table, key: str | None) -> str:
        names = _columns(table, *([key] if key else []))
        arrays = ", ".join(f"CAST(:{table.name}_{c} AS {_sql_type(table, c)}[])" for c in names)
        source = f"unnest({arrays}) AS x({', '.join(names)})"
        picked = ", ".join(f"x.{c}" for c in names)
        if key is None:
            return f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {picked} FROM {source}"
        return (
            f"INSERT INTO {table.name} ({key}, {', '.join(names)})"
            f" SELECT p.pk, {picked} FROM p, {source}"
        )

    def parameters(
        self,
        row: Mapping[str, Any],
        rows: Mapping[str, Sequence[Mapping[str, Any]]],
        **binds: Any,
    ) -> dict[str, Any]:
        """Binds for ``row`` (the parent's), ``rows`` (per table name, children's without
        their key) and the computed columns' own ``binds``."""
        found = {
            f"p_{c}": _bound(self.parent, c, row)
            for c in _columns(self.parent)
            if c not in self.computed
        }
        for table, columns in self.bound:
            listed = rows.get(table.name, ())
            for c in columns:
                found[f"{table.name}_{c}"] = [_bound(table, c, r) for r in listed]
        return {**found, **binds}

    async def insert(
        self,
        conn: AsyncConnection,
        row: Mapping[str, Any],
        rows: Mapping[str, Sequence[Mapping[str, Any]]],
        **binds: Any,
    ) -> int:
        """Write everything in one statement; the parent's pk."""
        result = await conn.execute(self.sql, self.parameters(row, rows, **binds))
        return int(result.scalar_one())


async def insert_one_by_one(
    conn: AsyncConnection,
    chain: Chain,
    row: Mapping[str, Any],
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
) -> int:
    """The same rows as :meth:`Chain.insert`, one INSERT per table (SQLite); ``row`` already
    holds the values of the computed columns."""
    pk = int(
        (
            await conn.execute(insert(chain.parent).values(**row).returning(chain.parent.c.pk))
        ).scalar_one()
    )
    for table, key in chain.children:
        if listed := rows.get(table.name):
            await conn.execute(insert(table), [{**r, key: pk} for r in listed])
    for table in chain.beside:
        if listed := rows.get(table.name):
            await conn.execute(insert(table), list(listed))
    for table, keys in chain.tallies:
        if listed := rows.get(table.name):
            added = sqlite.insert(table)
            counted = {c: table.c[c] + added.excluded[c] for c in _columns(table, *keys)}
            upsert = added.on_conflict_do_update(index_elements=list(keys), set_=counted)
            await conn.execute(upsert, list(listed))
    return pk
