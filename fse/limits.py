"""Input limits: the bounds every request is held to before it is validated, stored or searched.

One place, so that a value the databases cannot hold never reaches them: PostgreSQL refuses a
NUL character, a year past 9999 in UTC or a number over its column's precision where SQLite
stores it, and the two would disagree; Python refuses to recurse 150 levels. Each limit answers
a 4xx OperationOutcome naming the element (docs/errors.md, "Input limits"):

- a JSON body (every door reads it through ``fse.resources.parse_json``): nesting at most
  :data:`MAX_JSON_DEPTH` levels (400 FSE-0037); every string at most :data:`MAX_STRING_CHARS`
  characters (FHIR R4 ``string``; base64Binary and xhtml excepted) and without a control
  character but tab, carriage return and line feed (FHIR: ``[ \\r\\n\\t\\S]+``) (422 FSE-0036);
- what a resource's search parameters index, and its dates of care: dates in the range of the
  index once widened to instants in UTC, numbers below 10^18, token systems and business
  identifiers of at most 255 characters, reference types and ids of at most 64 (422 FSE-0035);
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
from fse.store.indexing import quantity_of, reference_of
from fse.store.search_params import SEARCH_PARAMS, UNIQUE_IDENTIFIER_TYPES

MAX_JSON_DEPTH = 64
"""Objects and arrays nested in a body, the Bundle and its entries included (FHIR resources
nest a dozen levels; 150 nested extensions exhausted Python's recursion in validation)."""
MAX_STRING_CHARS = 1_048_576
"""FHIR R4 §2.24.0.1: a string SHALL NOT exceed 1 MB; we count characters."""
UNBOUNDED_KEYS = frozenset({"data", "div"})
"""Elements that are not FHIR strings: base64Binary (Attachment, Signature, Binary ``data``)
and xhtml (Narrative ``div``); the body size limit bounds them."""
TOKEN_CHARS = 255
"""Token systems and business identifiers are indexed in VARCHAR(255) columns."""
ID_CHARS = 64
"""A FHIR id (and a resource type) is at most 64 characters: VARCHAR(64) in the index."""
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
_ESCAPED_CONTROL = re.compile(rb"\\u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F])")
"""The same in JSON text: a raw control character is not JSON (orjson refuses it), so one can
only come as a \\u00XX escape. Over-matching (an escaped backslash before ``u0000``) only
makes the strings be looked at."""


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


def _too_deep(root: Any) -> bool:
    """Whether containers nest past MAX_JSON_DEPTH (iterative: no recursion to exhaust; the
    parsed value, not the text, so brackets inside strings cannot hide a level)."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


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
    deep = raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and _too_deep(value)
    strings = len(raw) > MAX_STRING_CHARS or _ESCAPED_CONTROL.search(raw) is not None
    if not deep and not strings:
        return
    root = value.get("resourceType") if isinstance(value, dict) else None
    issues: list[Issue] = []
    _walk(value, root if isinstance(root, str) else "$", 1, True, issues)
    if issues:
        raise Unprocessable.of(issues, ErrorCode.INVALID_STRING)


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


def _too_long(path: str, value: Any, limit: int) -> list[Issue]:
    if not isinstance(value, str) or len(value) <= limit:
        return []
    return [
        Issue(
            ErrorCode.VALUE_OUT_OF_RANGE,
            f"{path}: {len(value)} characters, over the {limit} the index holds",
            (path,),
            issue_type="too-long",
        )
    ]


def _token_issues(path: str, value: Any) -> list[Issue]:
    """A token's system (Identifier, Coding, CodeableConcept.coding) longer than its column;
    codes are indexed by their first 255 characters."""
    if not isinstance(value, dict):
        return []
    codings = value.get("coding")
    if isinstance(codings, list):
        return [
            issue
            for i, coding in enumerate(codings)
            if isinstance(coding, dict)
            for issue in _too_long(f"{path}.coding[{i}].system", coding.get("system"), TOKEN_CHARS)
        ]
    return _too_long(f"{path}.system", value.get("system"), TOKEN_CHARS)


def _reference_issues(path: str, value: Any) -> list[Issue]:
    target = reference_of(value)
    if target is None or max(len(target[0]), len(target[1])) <= ID_CHARS:
        return []
    where = f"{path}.reference"
    return [
        Issue(
            ErrorCode.VALUE_OUT_OF_RANGE,
            f"{where}: a type and an id of at most {ID_CHARS} characters each (FHIR ids)",
            (where,),
            issue_type="too-long",
        )
    ]


def _identifier_issues(rtype: str, resource: dict[str, Any]) -> list[Issue]:
    """Business identifiers are unique per type on (system, value), each at most 255."""
    if rtype not in UNIQUE_IDENTIFIER_TYPES:
        return []
    return [
        issue
        for path, ident in values_with_paths(resource, ["identifier"], rtype)
        if isinstance(ident, dict)
        for issue in _too_long(f"{path}.value", ident.get("value"), TOKEN_CHARS)
    ]


_CHECKS = {
    "date": _date_issues,
    "quantity": _number_issues,
    "number": _number_issues,
    "token": _token_issues,
    "reference": _reference_issues,
}


def index_issues(resource: dict[str, Any]) -> list[Issue]:
    """One issue per value the index cannot hold (the same on SQLite and PostgreSQL): a date
    (indexed, or of care) whose offset carries it past 9999 or before year 1 in UTC, a number
    of 10^18, a token system or identifier over 255 characters, a reference whose type or id is
    over 64."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return []
    elements = {
        (path, param.type)
        for param in SEARCH_PARAMS.get(rtype, ())
        if param.type in _CHECKS
        for path in param.paths
    } | {(path, "date") for path in CARE_DATES.get(rtype, ())}
    found: dict[tuple[str, ...], Issue] = {}
    for element, kind in sorted(elements):
        for path, value in values_with_paths(resource, element.split("."), rtype):
            found.update((issue.expression, issue) for issue in _CHECKS[kind](path, value))
    found.update((issue.expression, issue) for issue in _identifier_issues(rtype, resource))
    return list(found.values())


def amount_problem(amount: Decimal, limit: Decimal = MAX_AMOUNT) -> str | None:
    """Why an amount (or quantity, with ``limit`` MAX_QUANTITY) cannot be settled, else None."""
    if not amount.is_finite() or abs(amount) > limit:
        return f"{amount} is over the {limit} this server settles"
    return None
