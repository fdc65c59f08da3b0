"""Tables of identity and access (same metadata as the store, one Alembic history)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text

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

users = Table(
    "users",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("practitioner", String(128), nullable=True),
    # the user's Practitioner reference (Practitioner/<id>), for professionals
    Column("signing_key", Text, nullable=True),
    # professionals' private signing key, sealed under their password (fse.crypto.signing)
    Column("signing_public_jwk", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime, nullable=True),
)

user_sessions = Table(
    "user_sessions",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_pk", PrimaryKey, ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    # The user's signing key re-sealed under this session's cookie (professionals only).
    Column("signing_key", Text, nullable=True),
    Index("ix_user_sessions_user_pk", "user_pk"),
)

insured_lookups = Table(
    "insured_lookups",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("user_pk", PrimaryKey, ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("looked_up_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    # An insured a professional found through their screen (a pharmacist at the counter): for a
    # while, their role's "insured looked up" rule lets them read that insured's prescriptions.
    Index("ix_insured_lookups_user_expires", "user_pk", "expires_at"),
)

SECURITY_TABLES = (system_clients, users, user_sessions)
"""Accounts and sessions outlive a test's truncation; lookups do not."""
