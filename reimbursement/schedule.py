"""Payment cut-offs: benefits approved before a cut-off leave in that cut-off's batch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class PaymentSchedule:
    cutoffs: tuple[time, ...]
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone: str) -> PaymentSchedule:
        """``"11:00,16:00"`` in the given time zone."""
        try:
            cutoffs = tuple(sorted(time.fromisoformat(t.strip()) for t in text.split(",") if t))
        except ValueError as error:
            raise ValueError(f"FSE_PAYMENT_CUTOFFS: {text!r} is not HH:MM[,HH:MM...]") from error
        if not cutoffs:
            raise ValueError("FSE_PAYMENT_CUTOFFS: at least one cut-off time")
        return cls(cutoffs, ZoneInfo(zone))

    def next_cutoff(self, now: datetime) -> datetime:
        """The first cut-off strictly after ``now`` (aware), in the schedule's zone."""
        local = now.astimezone(self.zone)
        for day in (local.date(), local.date() + timedelta(days=1)):
            for cutoff in self.cutoffs:
                moment = datetime.combine(day, cutoff, self.zone)
                if moment > local:
                    return moment
        raise AssertionError("unreachable: tomorrow always has a cut-off")
