"""FHIR JSON text in and out with its decimals exact: the one place amounts cross the edge.

FHIR R4 (§2.6.2, ``decimal``) asks that a decimal keep its precision: ``150.00`` is not
``150.0``. orjson reads every number with a fraction as a float, so FHIR JSON is read here
with the standard parser's ``parse_float=Decimal`` (a number's text as written) and written
with orjson, a ``Decimal`` being passed through as that same text (``orjson.Fragment``). What
the platform builds (amounts are ``Decimal`` end to end) and what a client sent therefore
leave byte for byte as they came: ``150.00`` is stored, read, searched and exported as
``150.00``.

Readers of an amount take it through :func:`decimal_of`, which refuses what is not a JSON
number (a string, a boolean, NaN, an infinity) instead of guessing.

Pure: no I/O; imports nothing of ours (the store, the API and the features all use it).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

_INT64 = range(-(2**63), 2**64)
"""Integers orjson writes (signed or unsigned 64-bit); larger ones stay exact as Decimal."""


class NotADecimal(ValueError):
    """A value that is not a finite JSON number where FHIR wants a decimal."""


def _integer(text: str) -> int | Decimal:
    number = int(text)
    return number if number in _INT64 else Decimal(text)


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(text: str | bytes) -> Any:
    """FHIR JSON already stored, or already accepted by orjson and the input limits (a client's
    body: ``fse.resources.parse_json``, so that orjson's refusals and the depth limit still
    come first): numbers with a fraction or an exponent as the exact ``Decimal`` written,
    whole numbers as ``int``."""
    return json.loads(text, parse_float=Decimal, parse_int=_integer, parse_constant=_constant)


def _exact(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    raise TypeError(f"{value!r} cannot be written as FHIR JSON")


def dumps(value: Any, option: int | None = None) -> bytes:
    """``orjson.dumps`` with each ``Decimal`` written as its exact text (``150.00``)."""
    return orjson.dumps(value, default=_exact, option=option)


def decimal_of(value: Any) -> Decimal:
    """The one reader of a FHIR decimal (an amount, a quantity, a coefficient, a rate): the
    exact ``Decimal`` of a JSON number. A string, a boolean, ``None``, a float (never read
    from FHIR JSON here: ``loads`` gives Decimal), NaN or an infinity raise ``NotADecimal``."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise NotADecimal(f"{value!r}: a JSON number is expected")
    number = Decimal(value)
    if not number.is_finite():
        raise NotADecimal(f"{value!r}: a finite number is expected")
    return number
