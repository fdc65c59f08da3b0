"""Amounts in dirhams: ``Decimal`` rounded to the centime, half up, at each step that pays."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENTIME = Decimal("0.01")
ZERO = Decimal("0.00")


def centimes(amount: Decimal) -> Decimal:
    """Round to the centime, half up (0.005 -> 0.01), as a payment order must carry it."""
    return amount.quantize(CENTIME, rounding=ROUND_HALF_UP)


def amount(text: str | int | Decimal) -> Decimal:
    """A data-file or FHIR amount as an exact Decimal (never through float)."""
    if isinstance(text, float):
        raise TypeError("amounts are never floats")
    return Decimal(str(text))
