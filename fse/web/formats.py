"""French display conventions, one helper each: JJ/MM/AAAA dates and ``9 850,00 MAD`` amounts.

Registered as Jinja2 filters (``|date_fr``, ``|datetime_fr``, ``|mad``) so that every page
writes a date or an amount the same way; the values stay ``date`` and ``Decimal`` until here.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

NARROW_NBSP = "\u202f"  # the thousands separator French typography uses (fine space)
NBSP = "\u00a0"  # between the amount and its currency, so a line never breaks inside


def date_fr(value: date | datetime | str | None) -> str:
    """``2026-12-01`` (or a datetime, or an ISO string) as ``01/12/2026``; empty stays empty."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        text = value[:10]
        try:
            value = date.fromisoformat(text)
        except ValueError:
            return value
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"


def datetime_fr(value: datetime | str | None) -> str:
    """A moment as ``01/12/2026 à 14:05`` (in the zone it carries)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return f"{date_fr(value)} à {value.hour:02d}:{value.minute:02d}"


def amount_fr(value: Decimal | int | str | float | None) -> str:
    """``9850`` as ``9 850,00`` (two decimals, half up, fine space between thousands)."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return str(value)
    sign = "-" if number < 0 else ""
    units, cents = f"{abs(number):.2f}".split(".")
    groups = []
    while len(units) > 3:
        groups.insert(0, units[-3:])
        units = units[:-3]
    groups.insert(0, units)
    return f"{sign}{NARROW_NBSP.join(groups)},{cents}"


def mad(value: Decimal | int | str | float | None) -> str:
    """An amount with its currency: ``9 850,00 MAD``."""
    text = amount_fr(value)
    return f"{text}{NBSP}MAD" if text else ""


def count_fr(value: int) -> str:
    """``12345`` as ``12 345`` (a count of sheets, of operations)."""
    return f"{value:,}".replace(",", NARROW_NBSP)


def number_fr(value: Decimal | int | None) -> str:
    """A coefficient as written: ``Decimal("0.75")`` as ``0,75``, ``Decimal("70.0")`` as ``70``."""
    if value is None:
        return ""
    return f"{Decimal(value).normalize():f}".replace(".", ",")


def percent_fr(value: Decimal | int | None) -> str:
    """``Decimal("99.5")`` as ``99,5 %`` (as precise as the value is given)."""
    if value is None:
        return ""
    return f"{value}".replace(".", ",") + f"{NBSP}%"


FILTERS = {
    "date_fr": date_fr,
    "datetime_fr": datetime_fr,
    "amount_fr": amount_fr,
    "mad": mad,
    "count_fr": count_fr,
    "number_fr": number_fr,
    "percent_fr": percent_fr,
}
