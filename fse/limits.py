"""Input limits: the bounds every request is held to before it is validated, stored or searched.

One place, so that a value the databases cannot hold never reaches them: PostgreSQL refuses a
NUL character, a year past 9999 in UTC or a number over its column's precision where SQLite
stores it, and the two would disagree; Python refuses to recurse 150 levels. Each limit answers
a 4xx OperationOutcome naming the element (docs/errors.md, "Input limits"):

- a JSON body (every door reads it through ``fse.resources.parse_json``): nesting at most
  :data:`MAX_JSON_DEPTH` levels (400 FSE-0037); every string at most :data:`MAX_STRING_CHARS`
  characters (FHIR R4 ``string``; base64Binary and xhtml excepted) and without a control
  character but tab, carriage return and line feed (FHIR: ``[ \\r\\n\\t\\S]+``) (422 FSE-0036);
- the dates and numbers a resource's search parameters index, and its dates of care: in the
  range of the index once widened to instants in UTC (422 FSE-0035);
- amounts, quantities and coefficients of a claim the engine settles: :data:`MAX_AMOUNT`,
  :data:`MAX_QUANTITY` (422 FSE-0035, checked by ``reimbursement.claims``);
- search parameter values: no control character (400 FSE-0014, ``fse.store.query``);
- version numbers and paging cursors: what the columns hold (else 404 / 400).

Pure: no I/O.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from fse.care_dates import CARE_DATES, values_with_paths
from fse.errors import BadRequest, ErrorCode, Issue, Unprocessable
from fse.store.dates import DateOutOfRange, date_range
from fse.store.indexing import quantity_of
from fse.store.search_params import SEARCH_PARAMS

MAX_JSON_DEPTH = 64
"""Objects and arrays nested in a body, the Bundle and its entries included (FHIR resources
nest a dozen levels; 150 nested extensions exhausted Python's recursion in validation)."""
MAX_STRING_CHARS = 1_048_576
"""FHIR R4 §2.24.0.1: a string SHALL NOT exceed 1 MB; we count characters."""
UNBOUNDED_KEYS = frozenset({"data", "div"})
"""Elements that are not FHIR strings: base64Binary (Attachment, Signature, Binary ``data``)
and xhtml (Narrative ``div``); the body size limit bounds them."""
MAX_VERSION = 2**31 - 1
"""Version numbers are an INTEGER column: a larger one names no version."""
MAX_ROW_KEY = 2**63 - 1
"""Row keys (paging cursors) are BIGINT."""
MAX_INDEXED_NUMBER = Decimal(10) ** 18
"""Numbers and quantities are indexed as NUMERIC(24, 6): below 10^18 in absolute value."""
MAX_AMOUNT = Decimal("999999999.99")
"""The largest amount (MAD) of a claim line, and of the sum of its lines, the engine settles.
Money columns are NUMERIC(14, 2) (below 10^12): a line, a care sheet's total and the ledger
and payment-batch sums of a thousand such sheets all stay representable, on both databases.
No care sheet comes near a billion dirhams."""
MAX_QUANTITY = Decimal("99999999.99")
"""Quantities and coefficients of a settled line: NUMERIC(10, 2), two decimals at most (more
would be rounded by PostgreSQL and kept by SQLite)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
"""What FHIR strings may not hold: C0 control characters but tab, line feed, carriage return."""
_ESCAPED_CONTROL = re.compile(rb"(?<!\\)(?:\\\\)*\\u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F])")
"""The same in JSON text: a raw control character is not JSON (orjson refuses it), so one can
only come as a \\u00XX escape (an escaped backslash before ``u`` is not an escape)."""


def _string_problem(text: str, bounded: bool) -> tuple[str, str] | None:
    """(issue type, diagnostics) for a string FHIR does not allow, else None."""
    if bounded and len(text) > MAX_STRING_CHARS:
        return "too-long", f"{len(text)} characters, over the {MAX_STRING_CHARS} allowed"
    found = _CONTROL.search(text)
    if found:
        return "value", (
            f"control character U+{ord(found.group()):04X} at position {found.start()}: "
            "only tab, carriage return and line feed are allowed"
        )
    return None


def _too_deep(node: Any, depth: int) -> bool:
    """Whether containers nest past MAX_JSON_DEPTH below ``node`` (never recursing past it)."""
    if depth > MAX_JSON_DEPTH:
        return True
    children = node.values() if isinstance(node, dict) else node
    return any(_too_deep(c, depth + 1) for c in children if isinstance(c, dict | list))


def _walk(node: Any, path: str, depth: int, bounded: bool, issues: list[Issue]) -> None:
    """One issue per offending string under ``node``; 400 at the first level too deep."""
    if depth > MAX_JSON_DEPTH:
        message = f"{path}: JSON nested over {MAX_JSON_DEPTH} levels"
        issue = Issue(ErrorCode.NESTING_TOO_DEEP, message, (path,), issue_type="too-costly")
        raise BadRequest(message, (path,), code=ErrorCode.NESTING_TOO_DEEP, issues=[issue])
    if isinstance(node, dict):
        items: Any = node.items()
    elif isinstance(node, list):
        items = ((f"[{i}]", v) for i, v in enumerate(node))
    elif isinstance(node, str):
        problem = _string_problem(node, bounded)
        if problem is not None:
            issues.append(
                Issue(
                    ErrorCode.INVALID_STRING,
                    f"{path}: {problem[1]}",
                    (path,),
                    issue_type=problem[0],
                )
            )
        return
    else:
        return
    for key, value in items:
        if isinstance(node, dict):
            if _CONTROL.search(key):
                problem = _string_problem(key, bounded=False)
                assert problem is not None
                issues.append(
                    Issue(
                        ErrorCode.INVALID_STRING,
                        f"{path}: element name {key!r}: {problem[1]}",
                        (path,),
                        issue_type="structure",
                    )
                )
                continue
            child, keep_bound = f"{path}.{key}", bounded and key not in UNBOUNDED_KEYS
            keep_bound = keep_bound and not key.endswith("Base64Binary")
        else:
            child, keep_bound = path + key, bounded
        if isinstance(value, dict | list | str):
            _walk(value, child, depth + (not isinstance(value, str)), keep_bound, issues)


def check_body(value: Any, raw: bytes) -> None:
    """Refuse a parsed JSON body that nests too deep (400 FSE-0037) or holds a string FHIR
    forbids (422 FSE-0036, one issue per string, paths from the body's resourceType).

    The raw bytes decide cheaply whether to look: a body with at most MAX_JSON_DEPTH brackets
    cannot nest deeper, one of at most MAX_STRING_CHARS bytes holds no longer string, one
    without a \\u00XX control escape no control character; most bodies are not walked at all.
    """
    deep = raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and _too_deep(value, 1)
    strings = len(raw) > MAX_STRING_CHARS or _ESCAPED_CONTROL.search(raw) is not None
    if not deep and not strings:
        return
    root = value.get("resourceType") if isinstance(value, dict) else None
    issues: list[Issue] = []
    _walk(value, root if isinstance(root, str) else "$", 1, True, issues)
    if issues:
        raise Unprocessable(
            issues[0].diagnostics,
            issues[0].expression,
            code=ErrorCode.INVALID_STRING,
            issues=issues,
        )


def search_value_problem(key: str, raw: str) -> str | None:
    """Why a search parameter (name or value) cannot be searched, else None."""
    for text in (key, raw):
        problem = _string_problem(text, bounded=False)
        if problem is not None:
            return problem[1]
    return None


def _date_issues(path: str, value: Any) -> list[Issue]:
    texts = [(path, value)] if isinstance(value, str) else []
    if isinstance(value, dict):
        texts = [(f"{path}.{end}", value.get(end)) for end in ("start", "end")]
    issues = []
    for where, text in texts:
        if not isinstance(text, str):
            continue
        try:
            date_range(text)
        except DateOutOfRange as exc:
            issues.append(
                Issue(ErrorCode.VALUE_OUT_OF_RANGE, f"{where}: {exc}", (where,), issue_type="value")
            )
        except ValueError:  # not a FHIR date: the model check names it
            continue
    return issues


def _number_issues(path: str, value: Any) -> list[Issue]:
    quantity = quantity_of(value)
    if quantity is None or not quantity[0].is_finite() or abs(quantity[0]) < MAX_INDEXED_NUMBER:
        return []
    where = f"{path}.value" if isinstance(value, dict) else path
    return [
        Issue(
            ErrorCode.VALUE_OUT_OF_RANGE,
            f"{where}: {quantity[0]} is not below {MAX_INDEXED_NUMBER:.0E} in absolute value",
            (where,),
            issue_type="value",
        )
    ]


def range_issues(resource: dict[str, Any]) -> list[Issue]:
    """One issue per indexed date or number, or date of care, outside what the index holds:
    a dateTime whose offset carries it past 9999 or before year 1 in UTC, a number of 10^18."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return []
    elements = {
        (path, param.type)
        for param in SEARCH_PARAMS.get(rtype, ())
        if param.type in ("date", "quantity", "number")
        for path in param.paths
    } | {(path, "date") for path in CARE_DATES.get(rtype, ())}
    found: dict[tuple[str, ...], Issue] = {}
    for element, kind in sorted(elements):
        for path, value in values_with_paths(resource, element.split("."), rtype):
            issues = _date_issues(path, value) if kind == "date" else _number_issues(path, value)
            found.update((issue.expression, issue) for issue in issues)
    return list(found.values())


def amount_problem(amount: Decimal, limit: Decimal = MAX_AMOUNT) -> str | None:
    """Why an amount (or quantity, with ``limit`` MAX_QUANTITY) cannot be settled, else None."""
    if not amount.is_finite() or abs(amount) > limit:
        return f"{amount} is over the {limit} this server settles"
    return None
