"""Tables of dispensing (same metadata as the store: one Alembic history).

The invariants live here, in the database: a prescription line's dispensed quantity never
exceeds what was prescribed (CHECK, and the row is locked while a dispense is written); a
pharmacist's retried request (same Idempotency-Key) finds the first dispense (UNIQUE).
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Index,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from fse.store.tables import PrimaryKey, UtcDateTime, metadata

Quantity = Numeric(10, 2)

prescription_balances = Table(
    "prescription_balances",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("prescribed", Quantity, nullable=False),
    Column("dispensed", Quantity, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint(
        "dispensed >= 0 AND dispensed <= prescribed", name="ck_prescription_balances_within"
    ),
)

dispensations = Table(
    "dispensations",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("number", String(32), nullable=False, unique=True),
    Column("pharmacist", String(140), nullable=False),
    Column("pharmacy", String(140), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("claim_id", String(64), nullable=False),
    Column("provenance_id", String(64), nullable=False),
    # "MedicationDispense id:MedicationRequest id:quantity" per line, comma-separated
    Column("lines", Text, nullable=False),
    # the receipt as signed by the platform when the dispense was written, and its JWS
    Column("receipt", Text, nullable=False),
    Column("receipt_jws", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("reversed_at", UtcDateTime, nullable=True),
    UniqueConstraint("pharmacist", "idempotency_key", name="uq_dispensations_idempotency"),
    Index("ix_dispensations_pharmacy_day", "pharmacy", "created_at"),
)

PHARMACY_TABLES = (prescription_balances, dispensations)
