"""Parse FHIR search parameters into criteria (pure: no SQL, no web).

Repeated parameters are ANDed, comma-separated values ORed (FHIR R4 §3.1.1.4 "search").
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from fse.errors import BadRequest, ErrorCode
from fse.limits import MAX_ROW_KEY, search_value_problem
from fse.store.dates import DateOutOfRange, date_range
from fse.store.indexing import STRING_MAX
from fse.store.search_params import (
    PARAMS_BY_NAME,
    SUPPORTED_TYPES,
    SearchParam,
    search_param,
)
from fse.store.string_match import longer_than_index
from fse.store.tables import QUANTITY_MAX

ANY = object()
"""Token system wildcard: ``code`` alone matches any system."""

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
CONTROL_PARAMS = frozenset({"_count", "_sort", "_total", "_include", "_revinclude", "_cursor"})
IGNORED_PARAMS = frozenset({"_format", "_pretty"})
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
"""A FHIR logical id (R4 \u00a72.30.0.1 ``id``): what every id in a URL, a search or a signed
claim must be."""
DIGITS = re.compile(r"[0-9]+")
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
"""A FHIR decimal (R4 \u00a72.24.0.1 with the exponent the search syntax allows): ASCII digits
only, where Python's ``int`` and ``Decimal`` also read '\u0663' or 'NaN'."""
MAX_EXPONENT = 64
"""Searched numbers stay within 10^\u00b164: beyond, no stored value compares, and PostgreSQL's
numeric refuses them."""


@dataclass(frozen=True)
class Criterion:
    """One search parameter occurrence: ``values`` are ORed."""

    param: str
    kind: str
    values: tuple[Any, ...]
    modifier: str | None = None


@dataclass(frozen=True)
class Chain:
    param: str
    targets: tuple[str, ...]
    inner: dict[str, Criterion]
    """Criterion per target type that defines the chained parameter."""


@dataclass(frozen=True)
class Include:
    source_type: str
    param: str
    target_type: str | None


@dataclass
class SearchQuery:
    resource_type: str
    criteria: list[Criterion | Chain] = field(default_factory=list)
    count: int = 20
    sort: tuple[str, bool] | None = None
    """(parameter, descending); None: insertion order."""
    total: bool = False
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    cursor: tuple[Any, int] | None = None
    unknown: list[str] = field(default_factory=list)
    echo: list[tuple[str, str]] = field(default_factory=list)
    """Parameters as understood, for the Bundle's self and next links."""


def whole_number(raw: str) -> int | None:
    """The value of a string of ASCII digits; None for anything else (signs, spaces, '\u0663')."""
    return int(raw) if DIGITS.fullmatch(raw) else None


def _invalid(name: str, message: str) -> BadRequest:
    return BadRequest(message, (name,), code=ErrorCode.INVALID_SEARCH_PARAMETER)


def split_prefix(raw: str) -> tuple[str, str]:
    if len(raw) > 2 and raw[:2] in PREFIXES and raw[2] in "0123456789-":
        return raw[:2], raw[2:]
    return "eq", raw


def parse_token(raw: str) -> tuple[Any, str | None]:
    if "|" not in raw:
        return ANY, raw
    system, code = raw.split("|", 1)
    return (system or None), (code or None)


def parse_date(name: str, raw: str) -> tuple[str, datetime, datetime]:
    prefix, text = split_prefix(raw)
    try:
        if not text.isascii():  # the pattern's \d would read '\u0662\u0660\u0662\u0666' as 2026
            raise ValueError(text)
        low, high = date_range(text)
    except DateOutOfRange as exc:
        raise _invalid(name, f"{name}: {exc}") from None
    except ValueError:
        message = f"{name}: '{raw}' is not a FHIR date (YYYY[-MM[-DD[Thh:mm...]]])"
        raise _invalid(name, message) from None
    return prefix, low, high


def parse_number(name: str, raw: str) -> tuple[str, Decimal, Decimal, str | None, str | None]:
    number_text, _, rest = raw.partition("|")
    system, _, code = rest.partition("|")
    prefix, number_text = split_prefix(number_text)
    if not DECIMAL.fullmatch(number_text):
        raise _invalid(name, f"{name}: '{raw}' is not a number (ASCII digits, '.', exponent)")
    value = Decimal(number_text)
    if abs(value.adjusted()) > MAX_EXPONENT and value != 0:
        raise _invalid(name, f"{name}: '{raw}' is out of range (10^\u00b1{MAX_EXPONENT})")
    exponent = value.as_tuple().exponent
    half = Decimal(5).scaleb((exponent if isinstance(exponent, int) else 0) - 1)
    low, high = _within_index(value - half), _within_index(value + half)
    return prefix, low, high, system or None, code or None


def _within_index(bound: Decimal) -> Decimal:
    """A bound past what the index holds compares like the index's own limit: ``lt1e400`` finds
    every stored number, ``gt1e400`` none (PostgreSQL refuses the bound itself)."""
    return max(-QUANTITY_MAX, min(QUANTITY_MAX, bound))


def parse_reference(
    param: SearchParam, raw: str, type_modifier: str | None
) -> tuple[str | None, str]:
    parts = raw.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2:
        return parts[-2], parts[-1]
    if type_modifier:
        return type_modifier, raw
    return (param.targets[0] if len(param.targets) == 1 else None), raw


def _values(raw: str) -> list[str]:
    """Split on commas not escaped with a backslash."""
    parts = re.split(r"(?<!\\),", raw)
    return [p.replace("\\,", ",") for p in parts if p != ""]


def criterion_for(rtype: str, name: str, modifier: str | None, raw: str) -> Criterion:
    param = search_param(rtype, name)
    if param is None:
        raise KeyError(name)
    values = _values(raw)
    if not values:
        raise _invalid(name, f"{name}: empty value")
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise _invalid(name, f"{name}:missing takes true or false")
        return Criterion(name, param.type, (raw == "true",), "missing")
    allowed = {
        "token": {None, "not"},
        "string": {None, "exact", "contains"},
        "date": {None},
        "quantity": {None},
        "number": {None},
        "reference": {None, *param.targets},
    }[param.type]
    if modifier not in allowed:
        raise _invalid(name, f"{name}: modifier ':{modifier}' is not supported")
    if param.type == "token":
        parsed: list[Any] = [parse_token(v) for v in values]
    elif param.type == "string":
        parsed = values
    elif param.type == "date":
        parsed = [parse_date(name, v) for v in values]
    elif param.type == "reference":
        parsed = [parse_reference(param, v, modifier) for v in values]
        modifier = None
    else:
        parsed = [parse_number(name, v) for v in values]
    return Criterion(name, param.type, tuple(parsed), modifier)


def _special(rtype: str, name: str, raw: str) -> Criterion:
    values = _values(raw)
    if name == "_id":
        bad = [v for v in values if not ID_RE.match(v)]
        if bad or not values:
            raise _invalid(name, f"_id: '{raw}' is not a valid id")
        return Criterion("_id", "id", tuple(values))
    return Criterion("_lastUpdated", "lastUpdated", tuple(parse_date(name, v) for v in values))


def _chain(rtype: str, key: str, raw: str) -> Chain:
    head, _, tail = key.partition(".")
    ref_name, _, type_modifier = head.partition(":")
    param = search_param(rtype, ref_name)
    if param is None or param.type != "reference":
        raise KeyError(key)
    if "." in tail:
        raise _invalid(key, f"{key}: only one level of chaining is supported")
    inner_name, _, inner_modifier = tail.partition(":")
    targets = (type_modifier,) if type_modifier else param.targets
    inner: dict[str, Criterion] = {}
    for target in targets:
        if target in PARAMS_BY_NAME and (
            inner_name in PARAMS_BY_NAME[target] or inner_name in ("_id", "_lastUpdated")
        ):
            inner[target] = (
                _special(target, inner_name, raw)
                if inner_name.startswith("_")
                else criterion_for(target, inner_name, inner_modifier or None, raw)
            )
    if not inner:
        raise KeyError(key)
    if any(longer_than_index(c) for c in inner.values()):
        raise _invalid(
            key, f"{key}: a chained string value is compared on its first {STRING_MAX} characters"
        )
    return Chain(ref_name, tuple(inner), inner)


def _include(name: str, raw: str) -> Include:
    parts = raw.split(":")
    if len(parts) not in (2, 3) or parts[0] not in SUPPORTED_TYPES:
        raise _invalid(name, f"{name}: expected Type:parameter[:TargetType], got '{raw}'")
    param = search_param(parts[0], parts[1])
    if param is None or param.type != "reference":
        raise _invalid(name, f"{name}: {parts[0]} has no reference parameter '{parts[1]}'")
    return Include(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def encode_cursor(sort_value: Any, pk: int) -> str:
    payload = orjson.dumps(
        [sort_value.isoformat() if isinstance(sort_value, datetime) else sort_value, pk]
    )
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(raw: str) -> tuple[Any, int]:
    try:
        padded = raw + "=" * (-len(raw) % 4)
        value, pk = orjson.loads(base64.urlsafe_b64decode(padded))
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
            value = value.astimezone(UTC) if value.tzinfo else value
        if not isinstance(pk, int) or not 0 <= pk <= MAX_ROW_KEY:
            raise ValueError(pk)
        return value, pk
    except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError) as exc:
        raise _invalid("_cursor", "_cursor: not a cursor issued by this server") from exc


def _control(query: SearchQuery, name: str, raw: str, max_count: int) -> None:
    if name == "_count":
        count = whole_number(raw)
        if count is None:
            raise _invalid(name, "_count must be a whole number (ASCII digits)")
        query.count = min(count, max_count)
        query.echo.append((name, str(query.count)))
        return
    elif name == "_sort":
        descending = raw.startswith("-")
        key = raw.lstrip("-")
        param = search_param(query.resource_type, key)
        if key != "_lastUpdated" and (param is None or param.type != "date"):
            raise _invalid(name, f"_sort: only _lastUpdated and date parameters, not '{raw}'")
        query.sort = (key, descending)
    elif name == "_total":
        if raw not in ("none", "estimate", "accurate"):
            raise _invalid(name, "_total takes none, estimate or accurate")
        query.total = raw == "accurate"
    elif name == "_include":
        query.includes.append(_include(name, raw))
    elif name == "_revinclude":
        query.revincludes.append(_include(name, raw))
    elif name == "_cursor":
        query.cursor = decode_cursor(raw)
        return
    query.echo.append((name, raw))


def parse_search(
    rtype: str, items: list[tuple[str, str]], *, default_count: int, max_count: int
) -> SearchQuery:
    """Criteria for ``items`` (query string pairs); unknown parameters are listed, not raised."""
    query = SearchQuery(rtype, count=min(default_count, max_count))
    for key, raw in items:
        problem = search_value_problem(key, raw)
        if problem is not None:
            raise _invalid(key, f"{key}: {problem}")
        name, _, modifier = key.partition(":")
        if key in IGNORED_PARAMS:
            continue
        if name in CONTROL_PARAMS:
            _control(query, name, raw, max_count)
            continue
        try:
            if name in ("_id", "_lastUpdated") and not modifier:
                criterion: Criterion | Chain = _special(rtype, name, raw)
            elif "." in key:
                criterion = _chain(rtype, key, raw)
            else:
                criterion = criterion_for(rtype, name, modifier or None, raw)
        except KeyError:
            query.unknown.append(key)
            continue
        query.criteria.append(criterion)
        query.echo.append((key, raw))
    return query
