"""The double-entry ledger: benefits owed, payments made, and the proof that it balances.

Accounts: ``benefits`` (expense, debit), ``payable`` (owed to payees, credited per settlement,
debited per payment batch) and ``bank`` (CNSS's account, credited by each batch). Amounts are
signed, debit positive: every journal sums to zero. A settlement is expensed once (unique
settlement/account/kind) and paid once: it gets an approval number when it becomes payable, and
batches pay disjoint, contiguous ranges of approval numbers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reimbursement.tables import (
    APPROVAL_SEQUENCE,
    ledger_entries,
    payment_batches,
    settlements,
)

APPROVAL_GATE = 0x46534541
"""Advisory lock: approvals hold it shared until commit; a batch takes it exclusively to read
the last approval number, so no approval below that number can still be in flight."""


_NEXT_APPROVAL = text(
    f"WITH gate AS (SELECT pg_advisory_xact_lock_shared(:k)) "
    f"SELECT nextval('{APPROVAL_SEQUENCE}') FROM gate"
)
"""The gate's shared lock, then the number, in one round trip: the number is drawn from the
gate's row, so always after the lock is held (a payment run closing the range holds the gate
exclusively until every approval that drew a lower number has committed)."""


DRAWN_APPROVAL = (
    f"CASE WHEN CAST(:payable AS boolean) THEN (SELECT nextval('{APPROVAL_SEQUENCE}')"
    " FROM (SELECT pg_advisory_xact_lock_shared(:approval_gate)) AS gate) END"
)
"""``_NEXT_APPROVAL`` as the SQL of a column, for a statement that writes the settlement with
its number (binds ``payable`` and ``approval_gate``, ``APPROVAL_GATE``): drawn only when
payable (PostgreSQL runs the subquery only when the CASE needs it), under the gate."""


async def approval_number(conn: AsyncConnection) -> int:
    """The next approval number, taken inside the approval gate (held until commit)."""
    if conn.dialect.name == "postgresql":
        return int(await conn.scalar(_NEXT_APPROVAL, {"k": APPROVAL_GATE}))
    # SQLite has one writer at a time: the next number after the highest committed one.
    highest = await conn.scalar(select(func.max(settlements.c.approval_seq)))
    return int(highest or 0) + 1


async def close_approvals(conn: AsyncConnection) -> int:
    """The highest approval number, once every approval that took a lower one has committed."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": APPROVAL_GATE})
    return int(await conn.scalar(select(func.max(settlements.c.approval_seq))) or 0)


def _journal(
    journal: str,
    kind: str,
    amounts: tuple[tuple[str, Decimal], ...],
    now: datetime,
    batch_pk: int | None = None,
) -> list[dict[str, Any]]:
    """One balanced journal's entries: ``amounts`` are (account, signed amount) pairs summing
    to zero (a settlement's entries get their ``settlement_pk`` where they are written)."""
    if sum(amount for _, amount in amounts) != 0:
        raise ValueError(f"unbalanced journal {journal}: {amounts}")
    return [
        {
            "journal": journal,
            "account": account,
            "kind": kind,
            "amount": amount,
            "batch_pk": batch_pk,
            "created_at": now,
        }
        for account, amount in amounts
    ]


async def _post(
    conn: AsyncConnection, entries: list[dict[str, Any]], settlement_pk: int | None = None
) -> None:
    await conn.execute(
        insert(ledger_entries), [{**entry, "settlement_pk": settlement_pk} for entry in entries]
    )


async def book_benefit(
    conn: AsyncConnection, settlement_pk: int, benefit: Decimal, now: datetime
) -> None:
    """Book the benefit of a settlement approved after it was written (a review)."""
    await _post(conn, benefit_entries(benefit, now), settlement_pk)


def benefit_entries(benefit: Decimal, now: datetime) -> list[dict[str, Any]]:
    """Expense the benefit and owe it to the payee, in one balanced journal: the entries of
    an approved settlement, written with it."""
    amounts = (("benefits", benefit), ("payable", -benefit))
    return _journal(f"benefit-{uuid.uuid4().hex}", "benefit", amounts, now)


async def book_payment(
    conn: AsyncConnection, batch_pk: int, journal: str, total: Decimal, now: datetime
) -> None:
    """The batch settles the payables it covers: debit payable, credit the bank."""
    amounts = (("payable", total), ("bank", -total))
    await _post(conn, _journal(journal, "payment", amounts, now, batch_pk))


@dataclass
class LedgerReport:
    journals: int = 0
    entries: int = 0
    problems: list[str] = field(default_factory=list)
    owed: Decimal = Decimal("0.00")
    """Approved benefits not paid yet."""
    paid: Decimal = Decimal("0.00")
    settlements_paid: int = 0
    settlements_owed: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


async def check_ledger(engine: AsyncEngine) -> LedgerReport:
    """Every journal balances; each approved settlement is expensed and owed exactly its
    benefit, and each cancelled one is reversed to zero; each paid batch debits payable and
    credits the bank by exactly the benefits of the settlements in its range; batch ranges
    never overlap (nothing is paid twice)."""
    report = LedgerReport()
    e, b = ledger_entries.c, payment_batches.c
    async with engine.connect() as conn:
        report.entries = int(
            await conn.scalar(select(func.count()).select_from(ledger_entries)) or 0
        )
        report.journals = int(await conn.scalar(select(func.count(func.distinct(e.journal)))) or 0)
        for journal, total in (
            await conn.execute(
                select(e.journal, func.sum(e.amount))
                .group_by(e.journal)
                .having(func.sum(e.amount) != 0)
                .limit(10)
            )
        ).all():
            report.problems.append(f"journal {journal} does not balance ({total})")
        await _settlements(conn, report)
        await _batches(conn, report)
        other = payment_batches.alias("other")
        overlapping = await conn.scalar(
            select(func.count())
            .select_from(payment_batches)
            .join(
                other,
                and_(
                    other.c.pk > b.pk,
                    other.c.first_seq <= b.last_seq,
                    b.first_seq <= other.c.last_seq,
                ),
            )
        )
        if overlapping:
            report.problems.append(f"{overlapping} payment batch(es) overlap: paid twice")
    return report


async def _settlements(conn: AsyncConnection, report: LedgerReport) -> None:
    e, s = ledger_entries.c, settlements.c
    booked = (
        select(
            e.settlement_pk.label("pk"),
            func.sum(e.amount).filter(e.account == "benefits").label("expensed"),
            func.sum(e.amount).filter(e.account == "payable").label("payable"),
        )
        .where(e.settlement_pk.is_not(None))
        .group_by(e.settlement_pk)
        .subquery()
    )
    expensed = func.coalesce(booked.c.expensed, 0)
    payable = func.coalesce(booked.c.payable, 0)
    approved = s.status == "approved"
    cancelled = s.status == "cancelled"
    wrong = (
        (~approved & ~cancelled & booked.c.pk.is_not(None))
        | (approved & ((expensed != s.benefit) | (payable != -s.benefit)))
        | (cancelled & ((expensed != 0) | (payable != 0)))
    )
    rows = await conn.execute(
        select(s.claim_key, s.status, s.benefit, expensed, payable)
        .select_from(settlements.outerjoin(booked, booked.c.pk == s.pk))
        .where(wrong)
        .limit(20)
    )
    for key, status, benefit, spent, owed in rows.all():
        report.problems.append(
            f"settlement {key} ({status}, benefit {benefit}): expensed {spent}, payable {owed}"
        )


async def _batches(conn: AsyncConnection, report: LedgerReport) -> None:
    e, s, b = ledger_entries.c, settlements.c, payment_batches.c
    in_range = s.approval_seq.between(b.first_seq, b.last_seq) & (s.status == "approved")
    for batch in (
        await conn.execute(
            select(
                b.batch_id,
                b.status,
                b.total,
                select(func.coalesce(func.sum(s.benefit), 0))
                .where(in_range)
                .scalar_subquery()
                .label("settled"),
                select(func.count()).where(in_range).scalar_subquery().label("count"),
                select(func.coalesce(func.sum(e.amount), 0))
                .where(e.batch_pk == b.pk, e.account == "payable")
                .scalar_subquery()
                .label("debited"),
            ).order_by(b.first_seq)
        )
    ).all():
        if batch.status != "paid":
            continue
        report.settlements_paid += int(batch.count)
        report.paid += Decimal(batch.settled)
        if not (batch.total == batch.settled == batch.debited):
            report.problems.append(
                f"batch {batch.batch_id}: total {batch.total}, settlements {batch.settled}, "
                f"payable debited {batch.debited}"
            )
    paid = (
        select(b.pk)
        .where(b.status == "paid", s.approval_seq.between(b.first_seq, b.last_seq))
        .exists()
    )
    owed_count, owed_total = (
        await conn.execute(
            select(func.count(), func.coalesce(func.sum(s.benefit), 0)).where(
                s.status == "approved", ~paid
            )
        )
    ).one()
    report.settlements_owed, report.owed = int(owed_count), Decimal(owed_total)


class AlreadyPaid(ValueError):
    """The benefit is in a payment batch: it can no longer be withdrawn here."""


async def cancel_settlement(conn: AsyncConnection, claim_key: str, now: datetime) -> None:
    """Cancel the settlement of a care sheet inside the caller's transaction: an approved
    benefit not yet batched is reversed (benefits credited, payable debited); held or rejected
    ones just close. Raises AlreadyPaid once a batch covers it."""
    s = settlements.c
    query = select(settlements).where(s.claim_key == claim_key)
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": APPROVAL_GATE})
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None or row.status == "cancelled":
        return
    if row.approval_seq is not None:
        batched = await conn.scalar(
            select(func.max(payment_batches.c.last_seq)).where(
                payment_batches.c.first_seq <= row.approval_seq
            )
        )
        if batched is not None and batched >= row.approval_seq:
            raise AlreadyPaid(f"{claim_key} is in a payment batch")
    if row.status == "approved":
        amounts = (("benefits", -row.benefit), ("payable", row.benefit))
        await _post(
            conn, _journal(f"reversal-{uuid.uuid4().hex}", "reversal", amounts, now), row.pk
        )
    await conn.execute(settlements.update().where(s.pk == row.pk).values(status="cancelled"))


async def batch_holding(conn: AsyncConnection, claim_key: str) -> tuple[str, str] | None:
    """The payment batch paying this care sheet (its id and status), once one holds it."""
    s, b = settlements.c, payment_batches.c
    row = (
        await conn.execute(
            select(b.batch_id, b.status)
            .select_from(
                settlements.join(payment_batches, s.approval_seq.between(b.first_seq, b.last_seq))
            )
            .where(s.claim_key == claim_key, s.status == "approved")
        )
    ).first()
    return (str(row.batch_id), str(row.status)) if row is not None else None
