"""The input limits are the columns' own: a bound looser than its column lets PostgreSQL fail
(500) where SQLite stores the value."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Integer, Numeric

from fse.limits import MAX_AMOUNT, MAX_INDEXED_NUMBER, MAX_QUANTITY, MAX_VERSION
from fse.store.tables import idx_quantity, resource_versions
from reimbursement.tables import Money, settlement_lines


def _largest(column_type: Numeric) -> Decimal:
    assert column_type.precision is not None and column_type.scale is not None
    digits = column_type.precision - column_type.scale
    return Decimal(10) ** digits - Decimal(1).scaleb(-column_type.scale)


def test_bounds_fit_their_columns() -> None:
    # A sheet's amounts, and the sums of a thousand sheets the ledger and a batch make.
    assert _largest(Money) >= MAX_AMOUNT * 1000
    assert _largest(settlement_lines.c.quantity.type) == MAX_QUANTITY
    assert _largest(settlement_lines.c.coefficient.type) == MAX_QUANTITY
    assert _largest(idx_quantity.c.value.type) < MAX_INDEXED_NUMBER
    assert _largest(idx_quantity.c.value.type) > MAX_INDEXED_NUMBER - 1
    assert isinstance(resource_versions.c.version.type, Integer)
    assert MAX_VERSION == 2**31 - 1
