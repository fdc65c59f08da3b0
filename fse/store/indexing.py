"""Pure extraction of search index rows from a resource (one function per parameter type).

Runs on every write in the same transaction as the version, so searches are index lookups.
No I/O here: resource dict in, rows out.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fse.store.dates import date_range, period_range
from fse.store.search_params import SEARCH_PARAMS, UNIQUE_IDENTIFIER_TYPES, SearchParam

STRING_MAX = 255


@dataclass(frozen=True)
class IndexRows:
    """Rows per index kind, without resource_pk (the repository adds it)."""

    token: list[dict[str, Any]]
    string: list[dict[str, Any]]
    date: list[dict[str, Any]]
    reference: list[dict[str, Any]]
    quantity: list[dict[str, Any]]
    identifiers: list[tuple[str, str]]

    def by_table(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        yield from ((kind, getattr(self, kind)) for kind in INDEX_KINDS)


INDEX_KINDS = ("token", "string", "date", "reference", "quantity")
"""One index table each (numbers share the quantity table)."""


def rows_by_kind(
    indexed: list[tuple[int, IndexRows]],
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The index rows of several resources (resource pk, rows), grouped by kind, each carrying
    its resource_pk: what every write path inserts, one statement per table."""
    for kind in INDEX_KINDS:
        rows = [{**row, "resource_pk": pk} for pk, index in indexed for row in getattr(index, kind)]
        if rows:
            yield kind, rows


def values_at(resource: dict[str, Any], path: str) -> list[Any]:
    """Follow a dotted path, flattening arrays at every step."""
    if "." not in path:  # most parameters: one step, on every write
        if path not in resource:
            return []
        value = resource[path]
        return list(value) if isinstance(value, list) else [value]
    current: list[Any] = [resource]
    for step in path.split("."):
        found: list[Any] = []
        for node in current:
            if isinstance(node, dict) and step in node:
                value = node[step]
                found.extend(value if isinstance(value, list) else [value])
        current = found
    return current


def fold(text: str) -> str:
    """Case- and accent-insensitive form used by string search ('Élodie' matches 'elodie')."""
    if text.isascii():  # nothing to decompose: most names and every code
        return " ".join(text.casefold().split())
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def normalize(text: str) -> str:
    """The folded form as indexed: its first ``STRING_MAX`` characters."""
    return fold(text)[:STRING_MAX]


def tokens_of(value: Any) -> list[tuple[str | None, str]]:
    if isinstance(value, bool):
        return [(None, "true" if value else "false")]
    if isinstance(value, str):
        return [(None, value)]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        return [pair for coding in value["coding"] for pair in tokens_of(coding)]
    if "code" in value and isinstance(value["code"], str):
        return [(value.get("system"), value["code"])]
    if "value" in value and isinstance(value["value"], str):
        return [(value.get("system"), value["value"])]
    return []


def strings_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_of(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_of(v)]
    return []


def dates_of(value: Any) -> list[tuple[datetime, datetime]]:
    if isinstance(value, str):
        return [date_range(value)]
    if isinstance(value, dict):
        span = period_range(value)
        return [span] if span else []
    return []


def reference_of(value: Any) -> tuple[str, str] | None:
    """``Type/id`` from a literal reference (relative, absolute or versioned); else None."""
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return None
    parts = value["reference"].split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 2 or not parts[-2][:1].isupper():
        return None
    return parts[-2], parts[-1]


def quantity_of(value: Any) -> tuple[Decimal, str | None, str | None] | None:
    raw, system, code = value, None, None
    if isinstance(value, dict):
        raw, system, code = value.get("value"), value.get("system"), value.get("code")
    if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal | str):
        return None
    try:
        return Decimal(str(raw)), system, code
    except InvalidOperation:
        return None


def _rows_for(rtype: str, param: SearchParam, value: Any, rows: IndexRows) -> None:
    base = {"type": rtype, "param": param.name}
    if param.type == "token":
        for system, code in tokens_of(value):
            rows.token.append({**base, "system": system, "code": code[:STRING_MAX]})
    elif param.type == "string":
        for text in strings_of(value):
            rows.string.append({**base, "value": normalize(text), "exact": text[:STRING_MAX]})
    elif param.type == "date":
        for low, high in dates_of(value):
            rows.date.append({**base, "low": low, "high": high})
    elif param.type == "reference":
        target = reference_of(value)
        if target and (not param.typed or target[0] in param.targets):
            rows.reference.append({**base, "target_type": target[0], "target_id": target[1]})
    else:
        quantity = quantity_of(value)
        if quantity:
            number, system, code = quantity
            rows.quantity.append({**base, "value": number, "system": system, "code": code})


def extract(resource_type: str, resource: dict[str, Any]) -> IndexRows:
    """Index rows for every declared search parameter of the type (duplicates removed)."""
    rows = IndexRows([], [], [], [], [], [])
    for param in SEARCH_PARAMS.get(resource_type, ()):
        for path in param.paths:
            for value in values_at(resource, path):
                _rows_for(resource_type, param, value, rows)
    for _, table_rows in rows.by_table():
        _dedupe(table_rows)
    if resource_type in UNIQUE_IDENTIFIER_TYPES:
        rows.identifiers.extend(unique_identifiers_of(resource))
    return rows


def unique_identifiers_of(resource: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = {
        (ident["system"], ident["value"])
        for ident in resource.get("identifier", []) or []
        if isinstance(ident, dict)
        and isinstance(ident.get("system"), str)
        and isinstance(ident.get("value"), str)
    }
    return sorted(pairs)


def _dedupe(rows: list[dict[str, Any]]) -> None:
    """Rows of one kind are built by ``_rows_for`` with the same keys in one order, so their
    values in that order tell two apart."""
    if len(rows) < 2:
        return
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for row in rows:
        key = tuple(row.values())
        if key not in seen:
            seen.add(key)
            unique.append(row)
    rows[:] = unique
