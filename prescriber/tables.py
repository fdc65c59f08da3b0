"""Tables of the doctor's space (same metadata as the store: one Alembic history).

The invariant lives here, in the database: a reviewed form (its idempotency key) signs at most
one care sheet per doctor (UNIQUE), so Back + "Signer", a double click or a retried POST finds
the first sheet instead of signing a second one. The row is written in the signing transaction.
"""

from __future__ import annotations

from sqlalchemy import Column, Date, Index, String, Table, Text, UniqueConstraint

from fse.store.tables import PrimaryKey, UtcDateTime, metadata

signed_sheets = Table(
    "signed_sheets",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("number", String(32), nullable=False, unique=True),
    Column("practitioner", String(140), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    # what was signed (patient and every line as typed): one key never signs two contents
    Column("content_hash", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("care_date", Date, nullable=False),
    # the lines only (acts, medicines and boxes, lab orders): the same lines the same day are
    # a probable duplicate the doctor must confirm
    Column("lines_hash", String(64), nullable=False),
    Column("signed_at", UtcDateTime, nullable=False),
    UniqueConstraint("practitioner", "idempotency_key", name="uq_signed_sheets_idempotency"),
    Index("ix_signed_sheets_same_day", "practitioner", "patient_id", "care_date"),
)

sheet_reviews = Table(
    "sheet_reviews",
    metadata,
    Column("idempotency_key", String(128), primary_key=True),
    Column("practitioner", String(140), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("form", Text, nullable=False),
    # the reviewed form as the doctor typed it (JSON): the review page is a GET of this row, so
    # the browser's Back comes to it again (pages are never cached) with the same key
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_sheet_reviews_created_at", "created_at"),
)
