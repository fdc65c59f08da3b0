"""Tables of identity and access (same metadata as the store, one Alembic history)."""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text

from fse.store.tables import PrimaryKey, UtcDateTime, metadata

system_clients = Table(
    "system_clients",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("client_id", String(64), nullable=False, unique=True),
    Column("secret_hash", String(255), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index("ix_system_clients_client_id_active", "client_id", "revoked_at"),
)

SECURITY_TABLES = (system_clients,)
