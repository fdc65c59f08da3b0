"""The figures of the agents' dashboard, aggregated in the database (a day is ~110,000 sheets):
sheets and amounts per day and regime, time from care to payment, the share paid the day it
was received, the held claims, and the professionals whose acts or prescriptions trip the
anomaly rules most."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reimbursement.tables import payment_batches, settlement_holds, settlements

DELAYS = ("même jour", "1 jour", "2 jours", "3 à 7 jours", "plus de 7 jours")


def delay_bucket(days: int) -> str:
    if days <= 2:
        return DELAYS[max(days, 0)]
    return DELAYS[3] if days <= 7 else DELAYS[4]


@dataclass
class Dashboard:
    days: list[date]
    sheets: dict[str, list[int]] = field(default_factory=dict)
    """Per regime, sheets received per day (cancelled ones left out)."""
    benefits: dict[str, list[Decimal]] = field(default_factory=dict)
    """Per regime, approved benefits per day (MAD)."""
    delays: Counter[str] = field(default_factory=Counter)
    """Paid sheets by days from the care to the payment."""
    paid: int = 0
    paid_same_day: int = 0
    held: int = 0
    held_amount: Decimal = Decimal("0.00")
    indicators: list[tuple[str, str, int]] = field(default_factory=list)
    """(professional, rule, sheets held by it), most frequent first: the professional whose
    act or prescription triggered the rule (a costly medicine's prescriber, not the pharmacy)."""

    @property
    def same_day_share(self) -> Decimal | None:
        if not self.paid:
            return None
        return (Decimal(100) * self.paid_same_day / self.paid).quantize(Decimal("0.1"))


def _day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


async def dashboard(conn: AsyncConnection, today: date, span: int = 14) -> Dashboard:
    first = today - timedelta(days=span - 1)
    board = Dashboard(days=[first + timedelta(days=n) for n in range(span)])
    s, b = settlements.c, payment_batches.c
    rows = await conn.execute(
        select(
            s.care_date,
            s.regime,
            func.count(),
            func.coalesce(func.sum(s.benefit).filter(s.status == "approved"), 0),
        )
        .where(s.care_date >= first, s.care_date <= today, s.status != "cancelled")
        .group_by(s.care_date, s.regime)
    )
    for care_date, regime, count, benefit in rows:
        name = regime or "inconnu"
        position = board.days.index(_day(care_date))
        board.sheets.setdefault(name, [0] * span)[position] += int(count)
        board.benefits.setdefault(name, [Decimal("0.00")] * span)[position] += Decimal(benefit)
    for regime in board.sheets:
        board.benefits.setdefault(regime, [Decimal("0.00")] * span)
    paid = await conn.execute(
        select(s.care_date, func.date(s.received_at), func.date(b.paid_at), func.count())
        .select_from(
            settlements.join(payment_batches, s.approval_seq.between(b.first_seq, b.last_seq))
        )
        .where(b.status == "paid", s.status == "approved", s.care_date >= first)
        .group_by(s.care_date, func.date(s.received_at), func.date(b.paid_at))
    )
    for care_date, received, paid_on, count in paid:
        board.delays[delay_bucket((_day(paid_on) - _day(care_date)).days)] += int(count)
        board.paid += int(count)
        board.paid_same_day += int(count) if _day(received) == _day(paid_on) else 0
    held, amount = (
        await conn.execute(
            select(func.count(), func.coalesce(func.sum(s.benefit), 0)).where(s.status == "held")
        )
    ).one()
    board.held, board.held_amount = int(held), Decimal(amount)
    h = settlement_holds.c
    fired = await conn.execute(
        select(h.professional_ref, h.rule, func.count().label("held"))
        .select_from(settlement_holds.join(settlements))
        .where(s.care_date >= first)
        .group_by(h.professional_ref, h.rule)
        .order_by(func.count().desc(), h.professional_ref, h.rule)
        .limit(10)
    )
    board.indicators = [(str(p), str(r), int(n)) for p, r, n in fired]
    return board
