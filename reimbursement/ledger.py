"""The double-entry ledger: benefits owed, payments made, and the proof that it balances.

Accounts: ``benefits`` (expense, debit), ``payable`` (owed to a payee, credit until paid) and
``bank`` (CNSS's account, credited by each payment batch). Amounts are signed: debit positive,
credit negative; every journal sums to zero. A unique (settlement, account, kind) constraint
means a settlement is expensed once and paid once, whatever the code does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reimbursement.tables import ledger_entries, payment_batches, settlements


async def book_benefit(
    conn: AsyncConnection, settlement_pk: int, benefit: Decimal, now: datetime
) -> None:
    """Expense the benefit and owe it to the payee, in one balanced journal."""
    journal = f"benefit-{uuid.uuid4().hex}"
    rows = [("benefits", benefit), ("payable", -benefit)]
    await conn.execute(
        insert(ledger_entries),
        [
            {
                "journal": journal,
                "account": account,
                "kind": "benefit",
                "amount": amount,
                "settlement_pk": settlement_pk,
                "created_at": now,
            }
            for account, amount in rows
        ],
    )


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
    """Every journal balances; every approved settlement is owed exactly its benefit and every
    paid one was paid exactly once, in a batch whose total matches; nothing else is booked."""
    report = LedgerReport()
    e, s, b = ledger_entries.c, settlements.c, payment_batches.c
    async with engine.connect() as conn:
        report.entries = int(
            await conn.scalar(select(func.count()).select_from(ledger_entries)) or 0
        )
        report.journals = int(await conn.scalar(select(func.count(func.distinct(e.journal)))) or 0)
        unbalanced = (
            await conn.execute(
                select(e.journal, func.sum(e.amount))
                .group_by(e.journal)
                .having(func.sum(e.amount) != 0)
                .limit(10)
            )
        ).all()
        for journal, total in unbalanced:
            report.problems.append(f"journal {journal} does not balance ({total})")
        # Per settlement: what was booked and paid, against its status and benefit.
        booked = (
            select(
                e.settlement_pk.label("pk"),
                func.sum(e.amount).filter(e.account == "benefits").label("expensed"),
                func.sum(e.amount).filter(e.account == "payable").label("payable"),
                func.count().filter(e.kind == "payment").label("payments"),
            )
            .where(e.settlement_pk.is_not(None))
            .group_by(e.settlement_pk)
            .subquery()
        )
        expensed = func.coalesce(booked.c.expensed, 0)
        payable = func.coalesce(booked.c.payable, 0)
        payments = func.coalesce(booked.c.payments, 0)
        counted = s.status.in_(("approved", "paid"))
        wrong = (
            (~counted & booked.c.pk.is_not(None))
            | (counted & (expensed != s.benefit))
            | ((s.status == "paid") & ((payments != 1) | (payable != 0)))
            | ((s.status == "approved") & ((payments != 0) | (payable != -s.benefit)))
        )
        joined = settlements.outerjoin(booked, booked.c.pk == s.pk)
        rows = (
            await conn.execute(
                select(s.claim_key, s.status, s.benefit, expensed, payable, payments)
                .select_from(joined)
                .where(wrong)
                .limit(20)
            )
        ).all()
        for key, status, benefit, spent, owed, paid in rows:
            report.problems.append(
                f"settlement {key} ({status}, benefit {benefit}): expensed {spent}, "
                f"payable balance {owed}, {paid} payment(s)"
            )
        for status, count, total in (
            await conn.execute(
                select(s.status, func.count(), func.coalesce(func.sum(s.benefit), 0))
                .where(counted)
                .group_by(s.status)
            )
        ).all():
            if status == "paid":
                report.settlements_paid, report.paid = int(count), Decimal(total)
            else:
                report.settlements_owed, report.owed = int(count), Decimal(total)
        batches = (
            await conn.execute(
                select(
                    b.batch_id,
                    b.status,
                    b.total,
                    select(func.coalesce(func.sum(s.benefit), 0))
                    .where(s.batch_pk == b.pk, s.status == "paid")
                    .scalar_subquery()
                    .label("settled"),
                    select(func.coalesce(-func.sum(e.amount), 0))
                    .where(e.batch_pk == b.pk, e.account == "bank")
                    .scalar_subquery()
                    .label("bank"),
                )
            )
        ).all()
        for batch in batches:
            if batch.status == "paid" and not (batch.total == batch.settled == batch.bank):
                report.problems.append(
                    f"batch {batch.batch_id}: total {batch.total}, settlements {batch.settled}, "
                    f"bank {batch.bank}"
                )
    return report
