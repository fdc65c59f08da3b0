"""Tables of settlement and money (same metadata as the store: one Alembic history).

The invariants live here, in the database: one settlement per care-sheet identifier (idempotent
submit); one benefit entry per settlement; payment batches covering disjoint ranges of approval
numbers (nothing paid twice), each booked once; one payment run per cut-off. Every journal of
the double-entry ledger sums to zero, which ``fse ledger check`` proves.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from fse.store.tables import PrimaryKey, UtcDateTime, metadata

Money = Numeric(14, 2)

payment_batches = Table(
    "payment_batches",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("batch_id", String(35), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("execution_date", Date, nullable=False),
    # The batch pays every approved settlement whose approval_seq is in [first_seq, last_seq]:
    # ranges follow each other without overlap, so no settlement can be in two batches.
    Column("first_seq", BigInteger, nullable=False, unique=True),
    Column("last_seq", BigInteger, nullable=False, unique=True),
    # The previous batch's last_seq (NULL for the first batch): batches form one chain.
    Column(
        "follows_seq",
        BigInteger,
        ForeignKey("payment_batches.last_seq"),
        nullable=True,
        unique=True,
    ),
    CheckConstraint("last_seq >= first_seq", name="ck_payment_batches_range"),
    CheckConstraint("first_seq = coalesce(follows_seq, 0) + 1", name="ck_payment_batches_chain"),
    Column("status", String(16), nullable=False),
    Column("transfer_count", Integer, nullable=False, default=0),
    Column("settlement_count", Integer, nullable=False, default=0),
    Column("total", Money, nullable=False, default=0),
    Column("file_path", Text, nullable=True),
    Column("file_sha256", String(64), nullable=True),
    Column("reconciliation_id", String(64), nullable=True),
    Column("paid_at", UtcDateTime, nullable=True),
)

payment_runs = Table(
    "payment_runs",
    metadata,
    # The leader row of a cut-off: each server worker wakes at the cut-off and inserts it; the
    # one whose insert succeeds runs `fse pay`, the others find it and do nothing.
    Column("cutoff", UtcDateTime, primary_key=True),
    Column("worker", String(140), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("exit_code", Integer, nullable=True),
)

settlements = Table(
    "settlements",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("claim_key", String(255), nullable=False, unique=True),
    Column("claim_id", String(64), nullable=False),
    Column("response_id", String(64), nullable=False),
    Column("eob_id", String(64), nullable=True),
    Column("patient_id", String(64), nullable=False),
    Column("provider_ref", String(140), nullable=False),
    Column("payee_kind", String(16), nullable=False),
    Column("payee_ref", String(140), nullable=False),
    Column("payee_name", String(200), nullable=False),
    Column("payee_iban", String(34), nullable=True),
    Column("regime", String(32), nullable=True),
    Column("care_date", Date, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("billed", Money, nullable=False),
    Column("eligible", Money, nullable=False),
    Column("benefit", Money, nullable=False),
    Column("patient_share", Money, nullable=False),
    Column("eligibility_id", String(64), nullable=True),
    Column("hold_rules", Text, nullable=True),
    # Numbered when the benefit becomes payable (approved with a RIB), in commit order.
    Column("approval_seq", BigInteger, nullable=True, unique=True),
    Index("ix_settlements_provider_day", "provider_ref", "care_date", "billed"),
    Index("ix_settlements_patient", "patient_id", "care_date"),
)

settlement_lines = Table(
    "settlement_lines",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("settlement_pk", PrimaryKey, ForeignKey("settlements.pk"), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("code", String(64), nullable=False),
    Column("coefficient", Numeric(10, 2), nullable=False),
    Column("quantity", Numeric(10, 2), nullable=False),
    Column("care_date", Date, nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("provider_ref", String(140), nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("billed", Money, nullable=False),
    Column("eligible", Money, nullable=False),
    Column("benefit", Money, nullable=False),
    Column("accepted", Boolean, nullable=False),
    Column("reason", String(8), nullable=True),
    UniqueConstraint("settlement_pk", "sequence", name="uq_settlement_lines_sequence"),
    Index("ix_settlement_lines_patient", "patient_id", "care_date"),
    Index("ix_settlement_lines_provider_day", "provider_ref", "care_date"),
    Index("ix_settlement_lines_day", "care_date", "provider_ref"),
    Index("ix_settlement_lines_request", "request_id"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("journal", String(64), nullable=False),
    # benefits (expense), payable (owed to a payee) or bank (CNSS's account)
    Column("account", String(16), nullable=False),
    # benefit, payment or reversal
    Column("kind", String(16), nullable=False),
    # debit positive, credit negative: each journal sums to zero
    Column("amount", Money, nullable=False),
    Column("settlement_pk", PrimaryKey, ForeignKey("settlements.pk"), nullable=True),
    Column("batch_pk", PrimaryKey, ForeignKey("payment_batches.pk"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("settlement_pk", "account", "kind", name="uq_ledger_entries_once"),
    Index("ix_ledger_entries_journal", "journal"),
    Index("ix_ledger_entries_batch_pk", "batch_pk"),
    # A batch is booked once: one payment entry per account (settlement entries have no batch).
    Index("ux_ledger_entries_batch_once", "batch_pk", "account", "kind", unique=True),
)

claim_reviews = Table(
    "claim_reviews",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("settlement_pk", PrimaryKey, ForeignKey("settlements.pk"), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("reviewer", String(140), nullable=False),
    Column("decided_at", UtcDateTime, nullable=False),
    UniqueConstraint("settlement_pk", name="uq_claim_reviews_settlement_pk"),
)

settlement_holds = Table(
    "settlement_holds",
    metadata,
    # One row per anomaly rule that held a sheet, with the professional answerable for it: the
    # prescriber of a costly medicine (not the pharmacy that dispensed it), else the provider.
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("settlement_pk", PrimaryKey, ForeignKey("settlements.pk"), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("professional_ref", String(140), nullable=False),
    UniqueConstraint("settlement_pk", "rule", name="uq_settlement_holds_rule"),
    Index("ix_settlement_holds_professional", "professional_ref", "rule"),
)

provider_days = Table(
    "provider_days",
    metadata,
    # Each provider's accepted NGAP acts per care day, whatever became of their sheets (as the
    # volume rule counts them), added to by the settlement's own statement: the rule and the
    # peers' daily mean read these rows instead of counting the day's lines on every sheet.
    Column("care_date", Date, primary_key=True),
    Column("provider_ref", String(140), primary_key=True),
    Column("ngap_acts", Integer, nullable=False),
)

REIMBURSEMENT_TABLES = (
    payment_batches,
    payment_runs,
    settlements,
    settlement_lines,
    ledger_entries,
    claim_reviews,
    settlement_holds,
    provider_days,
)

APPROVAL_SEQUENCE = "settlement_approval_seq"
"""PostgreSQL sequence numbering approvals (created by migration 0005)."""
