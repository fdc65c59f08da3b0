"""FHIR dates as ranges: a partial date ('2026', '2026-03') covers every instant it could mean."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

MIN_INSTANT = datetime(1, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


class DateOutOfRange(ValueError):
    """A well-formed FHIR dateTime whose instant, once its offset is applied, falls outside
    [MIN_INSTANT, MAX_INSTANT]: ``9999-12-31T23:59:59-05:00`` is in year 10000 in UTC. The
    index and every comparison work in UTC, so such a value cannot be stored or searched."""


def date_range(text: str) -> tuple[datetime, datetime]:
    """The [low, high] instants a FHIR date, dateTime or instant denotes (no zone: UTC).

    Raises ValueError for text that is not a FHIR date, DateOutOfRange (a ValueError) for one
    whose instants fall outside [MIN_INSTANT, MAX_INSTANT] in UTC.
    """
    match = _DATE_RE.match(text.strip())
    if not match:
        raise ValueError(f"not a FHIR date: {text!r}")
    g = match.groupdict()
    year = int(g["y"])
    if g["m"] is None:
        return _aware(datetime(year, 1, 1)), _aware(datetime(year, 12, 31, 23, 59, 59, 999999))
    month = int(g["m"])
    if g["d"] is None:
        last = calendar.monthrange(year, month)[1]
        low = datetime(year, month, 1)
        return _aware(low), _aware(datetime(year, month, last, 23, 59, 59, 999999))
    day = int(g["d"])
    if g["H"] is None:
        low = datetime(year, month, day)
        return _aware(low), _aware(datetime(year, month, day, 23, 59, 59, 999999))
    tz = _zone(g["tz"])
    second = int(g["S"] or 0)
    base = datetime(year, month, day, int(g["H"]), int(g["M"]), second, tzinfo=tz)
    micro = int((g["f"][1:] + "000000")[:6]) if g["f"] else 0
    try:
        low = base.replace(microsecond=micro).astimezone(UTC)
    except OverflowError:
        raise DateOutOfRange(
            f"{text!r} falls outside {instant_text(MIN_INSTANT)} .. {instant_text(MAX_INSTANT)}"
            " once its offset is applied"
        ) from None
    if g["f"]:
        return low, low
    span = timedelta(seconds=1) if g["S"] is not None else timedelta(minutes=1)
    # The last instant of the second (minute): never past MAX_INSTANT for a time that fits.
    return low, low + (span - timedelta(microseconds=1))


def _zone(text: str | None) -> tzinfo:
    if text is None or text == "Z":
        return UTC
    sign = 1 if text[0] == "+" else -1
    hours, minutes = int(text[1:3]), int(text[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def period_range(period: dict[str, object]) -> tuple[datetime, datetime] | None:
    start, end = period.get("start"), period.get("end")
    if not isinstance(start, str) and not isinstance(end, str):
        return None
    low = date_range(start)[0] if isinstance(start, str) else MIN_INSTANT
    high = date_range(end)[1] if isinstance(end, str) else MAX_INSTANT
    return low, high


def instant_text(value: datetime) -> str:
    """FHIR instant with milliseconds and an explicit UTC offset."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
