"""FHIR decimals cross the edge exact: read as written, written as read, refused if not numbers."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from fse.crypto.provenance import canonical
from fse.fhir_json import NotADecimal, decimal_of, dumps, loads


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("150", Decimal("150")),
        ("0", Decimal("0")),
        ("-3", Decimal("-3")),
        ("150.00", Decimal("150.00")),
        ("150.1", Decimal("150.1")),
        ("0.01", Decimal("0.01")),
        ("999999999.99", Decimal("999999999.99")),
        ("1.5E+2", Decimal("150")),
    ],
)
def test_a_json_number_is_read_as_the_exact_decimal_written(text: str, expected: Decimal) -> None:
    found = decimal_of(loads(f'{{"value": {text}}}')["value"])
    assert found == expected
    assert str(found) == text  # the digits as written, trailing zeros kept


@pytest.mark.parametrize(
    "value",
    ["150.00", "", True, False, None, 150.0, [1], {"value": 1}, Decimal("NaN"), Decimal("-Inf")],
)
def test_what_is_not_a_finite_json_number_is_refused(value: object) -> None:
    with pytest.raises(NotADecimal):
        decimal_of(value)


def test_decimals_leave_as_written_and_come_back_the_same() -> None:
    text = b'{"a":150.00,"b":[150.1,1E+2,0.000001,-0.0],"c":2,"d":"150.00"}'
    value = loads(text)
    assert value["a"] == Decimal("150.00") and value["c"] == 2 and value["d"] == "150.00"
    assert dumps(value) == b'{"a":150.00,"b":[150.1,1E+2,0.000001,-0.0],"c":2,"d":"150.00"}'
    assert dumps(loads(dumps(value))) == dumps(value)


def test_whole_numbers_beyond_64_bits_stay_exact() -> None:
    text = b'{"n":123456789012345678901234567890}'
    assert loads(text)["n"] == Decimal("123456789012345678901234567890")
    assert dumps(loads(text)) == text


def test_json_constants_are_not_numbers() -> None:
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        with pytest.raises(ValueError):
            loads(b'{"value": ' + constant + b"}")
    for bad in (Decimal("NaN"), Decimal("Infinity"), Decimal("sNaN")):
        with pytest.raises(orjson.JSONEncodeError):
            dumps({"value": bad})


def test_the_signed_bytes_are_the_same_for_exact_decimals_and_a_parser_s_doubles() -> None:
    """A client verifying a Provenance rebuilds the bytes from the JSON it reads (doubles); the
    platform from the stored text (Decimals): RFC 8785 writes both as the same number."""
    text = b'{"resourceType":"Claim","net":150.00,"rate":70.00,"boxes":2,"coefficient":1.5}'
    exact = loads(text)
    as_doubles = orjson.loads(text)
    assert canonical([exact]) == canonical([as_doubles])
    assert canonical([exact]) == (
        b'[{"boxes":2,"coefficient":1.5,"net":150,"rate":70,"resourceType":"Claim"}]'
    )
