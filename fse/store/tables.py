"""Tables of the resource store (HAPI-style: current row, history rows, one index table per type).

Content is JSON text on SQLite and JSONB on PostgreSQL; the engine passes it through untouched
(``json_serializer``/``json_deserializer`` are identities) so reads serve the stored text.
All timestamps are stored as naive UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

PrimaryKey = BigInteger().with_variant(Integer(), "sqlite")


class JsonDocument(TypeDecorator[str]):
    """JSON text in, JSON text out; JSONB on PostgreSQL so the database can query it."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[object]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(Text())


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in and out, naive UTC in the database (same on SQLite and PostgreSQL)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def _resource_fk() -> ForeignKey:
    return ForeignKey("resources.pk", ondelete="CASCADE")


resources = Table(
    "resources",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", UtcDateTime, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", JsonDocument, nullable=True),
    UniqueConstraint("type", "id", name="uq_resources_type_id"),
    Index("ix_resources_type_last_updated", "type", "last_updated", "pk"),
)

resource_versions = Table(
    "resource_versions",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("resource_pk", PrimaryKey, _resource_fk(), nullable=False),
    Column("type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", UtcDateTime, nullable=False),
    Column("method", String(8), nullable=False),
    Column("content", JsonDocument, nullable=True),
    UniqueConstraint("type", "id", "version", name="uq_resource_versions_type_id_version"),
    Index("ix_resource_versions_type_pk", "type", "pk"),
)


def _index_table(name: str, *columns: Column[object], indexes: tuple[Index, ...] = ()) -> Table:
    """An index table: rows are found by resource (to clear them) or by the lookup indexes,
    never one by one, so they have no key of their own (8 bytes and a B-tree entry a row)."""
    return Table(
        name,
        metadata,
        Column("resource_pk", PrimaryKey, _resource_fk(), nullable=False),
        Column("type", String(64), nullable=False),
        Column("param", String(64), nullable=False),
        *columns,
        Index(f"ix_{name}_resource_pk", "resource_pk"),
        *indexes,
    )


idx_token = _index_table(
    "idx_token",
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=False),
    indexes=(Index("ix_idx_token_lookup", "type", "param", "code", "system", "resource_pk"),),
)

idx_string = _index_table(
    "idx_string",
    Column("value", String(255), nullable=False),
    Column("exact", String(255), nullable=False),
    indexes=(
        Index(
            "ix_idx_string_lookup",
            "type",
            "param",
            "value",
            "resource_pk",
            postgresql_ops={"value": "varchar_pattern_ops"},
        ),
    ),
)

idx_date = _index_table(
    "idx_date",
    Column("low", UtcDateTime, nullable=False),
    Column("high", UtcDateTime, nullable=False),
    indexes=(
        Index("ix_idx_date_low", "type", "param", "low", "resource_pk"),
        Index("ix_idx_date_high", "type", "param", "high", "resource_pk"),
    ),
)

idx_reference = _index_table(
    "idx_reference",
    Column("target_type", String(64), nullable=False),
    Column("target_id", String(64), nullable=False),
    indexes=(
        Index(
            "ix_idx_reference_lookup", "type", "param", "target_id", "target_type", "resource_pk"
        ),
    ),
)

QUANTITY_PRECISION, QUANTITY_SCALE = 24, 6
QUANTITY_MAX = Decimal(10) ** (QUANTITY_PRECISION - QUANTITY_SCALE) - Decimal(10) ** -QUANTITY_SCALE
"""The largest number idx_quantity holds (PostgreSQL refuses a larger one, even as a bound)."""

idx_quantity = _index_table(
    "idx_quantity",
    Column("value", Numeric(QUANTITY_PRECISION, QUANTITY_SCALE), nullable=False),
    Column("system", String(255), nullable=True),
    Column("code", String(64), nullable=True),
    indexes=(Index("ix_idx_quantity_lookup", "type", "param", "value", "resource_pk"),),
)

unique_identifiers = Table(
    "unique_identifiers",
    metadata,
    Column("type", String(64), primary_key=True),
    Column("system", String(255), primary_key=True),
    Column("value", String(255), primary_key=True),
    Column("resource_pk", PrimaryKey, _resource_fk(), nullable=False, index=True),
)

INDEX_TABLES: dict[str, Table] = {
    "token": idx_token,
    "string": idx_string,
    "date": idx_date,
    "reference": idx_reference,
    "quantity": idx_quantity,
    "number": idx_quantity,
}
