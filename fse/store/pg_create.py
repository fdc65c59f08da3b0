"""PostgreSQL: a create as ONE statement (data-modifying CTEs), atomic without BEGIN/COMMIT.

On this machine a round trip through the driver costs ~0.3 ms, so the six inserts of a create
(resource, version, four index tables, identifiers) cost more than the rest of the request;
chained in one statement they take one round trip. Several creates of one transaction (a
settlement's ClaimResponse and ExplanationOfBenefit) chain the same way. SQLite runs the same
inserts one by one.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from fse.store.indexing import IndexRows

_CTES = """
r{n} AS (
    INSERT INTO resources (type, id, version, last_updated, deleted, content)
    VALUES (:type{n}, :id{n}, 1, :at{n}, false, CAST(:content{n} AS jsonb))
    RETURNING pk
), v{n} AS (
    INSERT INTO resource_versions (resource_pk, type, id, version, last_updated, method)
    SELECT pk, :type{n}, :id{n}, 1, :at{n}, 'POST' FROM r{n}
), t{n} AS (
    INSERT INTO idx_token (resource_pk, type, param, system, code)
    SELECT r{n}.pk, :type{n}, x.param, x.system, x.code
    FROM r{n}, unnest(CAST(:t_param{n} AS text[]), CAST(:t_system{n} AS text[]),
                      CAST(:t_code{n} AS text[])) AS x(param, system, code)
), s{n} AS (
    INSERT INTO idx_string (resource_pk, type, param, value, exact)
    SELECT r{n}.pk, :type{n}, x.param, x.value, x.exact
    FROM r{n}, unnest(CAST(:s_param{n} AS text[]), CAST(:s_value{n} AS text[]),
                      CAST(:s_exact{n} AS text[])) AS x(param, value, exact)
), d{n} AS (
    INSERT INTO idx_date (resource_pk, type, param, low, high)
    SELECT r{n}.pk, :type{n}, x.param, x.low, x.high
    FROM r{n}, unnest(CAST(:d_param{n} AS text[]), CAST(:d_low{n} AS timestamp[]),
                   CAST(:d_high{n} AS timestamp[])) AS x(param, low, high)
), f{n} AS (
    INSERT INTO idx_reference (resource_pk, type, param, target_type, target_id)
    SELECT r{n}.pk, :type{n}, x.param, x.target_type, x.target_id
    FROM r{n}, unnest(CAST(:f_param{n} AS text[]), CAST(:f_type{n} AS text[]),
                      CAST(:f_id{n} AS text[])) AS x(param, target_type, target_id)
), q{n} AS (
    INSERT INTO idx_quantity (resource_pk, type, param, value, system, code)
    SELECT r{n}.pk, :type{n}, x.param, x.value, x.system, x.code
    FROM r{n}, unnest(CAST(:q_param{n} AS text[]), CAST(:q_value{n} AS numeric[]),
                   CAST(:q_system{n} AS text[]), CAST(:q_code{n} AS text[]))
        AS x(param, value, system, code)
), u{n} AS (
    INSERT INTO unique_identifiers (type, system, value, resource_pk)
    SELECT :type{n}, x.system, x.value, r{n}.pk
    FROM r{n}, unnest(CAST(:u_system{n} AS text[]), CAST(:u_value{n} AS text[]))
        AS x(system, value)
)
"""
"""One create's CTEs, ``{n}`` standing for the suffix of its names and binds."""

CREATE_SQL = text(f"WITH {_CTES.format(n='')} SELECT pk FROM r")

_KEY_RE = re.compile(r"Key \(type, system, value\)=\((?P<key>.*)\) already exists")


@functools.cache
def _creates_sql(count: int) -> TextClause:
    """``count`` creates as one statement: the CTEs of each (suffixed ``_<i>``), then every
    new pk with its position."""
    ctes = ", ".join(_CTES.format(n=f"_{i}") for i in range(count))
    picked = " UNION ALL ".join(f"SELECT {i} AS i, pk FROM r_{i}" for i in range(count))
    return text(f"WITH {ctes} {picked}")


def _columns(rows: list[dict[str, Any]], *names: str) -> list[list[Any]]:
    return [[row[name] for row in rows] for name in names]


def parameters(rtype: str, rid: str, at: datetime, content: str, rows: IndexRows) -> dict[str, Any]:
    def utc_naive(value: datetime) -> datetime:
        return value.astimezone(UTC).replace(tzinfo=None)

    t_param, t_system, t_code = _columns(rows.token, "param", "system", "code")
    s_param, s_value, s_exact = _columns(rows.string, "param", "value", "exact")
    d_param, d_low, d_high = _columns(rows.date, "param", "low", "high")
    f_param, f_type, f_id = _columns(rows.reference, "param", "target_type", "target_id")
    q_param, q_value, q_system, q_code = _columns(rows.quantity, "param", "value", "system", "code")
    return {
        "type": rtype,
        "id": rid,
        "at": utc_naive(at),
        "content": content,
        "t_param": t_param,
        "t_system": t_system,
        "t_code": t_code,
        "s_param": s_param,
        "s_value": s_value,
        "s_exact": s_exact,
        "d_param": d_param,
        "d_low": [utc_naive(v) for v in d_low],
        "d_high": [utc_naive(v) for v in d_high],
        "f_param": f_param,
        "f_type": f_type,
        "f_id": f_id,
        "q_param": q_param,
        "q_value": q_value,
        "q_system": q_system,
        "q_code": q_code,
        "u_system": [system for system, _ in rows.identifiers],
        "u_value": [value for _, value in rows.identifiers],
    }


async def create_in_one_statement(
    conn: AsyncConnection, rtype: str, rid: str, at: datetime, content: str, rows: IndexRows
) -> int:
    """Insert everything; returns the resource pk. Raises DuplicateIdentifiers on a taken one."""
    try:
        result = await conn.execute(CREATE_SQL, parameters(rtype, rid, at, content, rows))
    except IntegrityError as exc:
        if "unique_identifiers" not in str(exc):
            raise
        raise DuplicateIdentifiers(taken_identifiers(str(exc), rows.identifiers)) from None
    return int(result.scalar_one())


async def creates_in_one_statement(
    conn: AsyncConnection, creates: list[tuple[str, str, datetime, str, IndexRows]]
) -> list[int]:
    """Several creates (type, id, time, content, rows) in one statement; their pks in order.
    Raises DuplicateIdentifiers naming the create (its index) whose identifier was taken."""
    binds: dict[str, Any] = {}
    for i, create in enumerate(creates):
        binds.update({f"{k}_{i}": v for k, v in parameters(*create).items()})
    try:
        result = await conn.execute(_creates_sql(len(creates)), binds)
    except IntegrityError as exc:
        if "unique_identifiers" not in str(exc):
            raise
        said = _said(exc)
        for i, (_, _, _, _, rows) in enumerate(creates):
            taken = taken_identifiers(said, rows.identifiers, exact=True)
            if taken:
                raise DuplicateIdentifiers(taken, i) from None
        raise
    return [pk for _, pk in sorted(result.all())]


def _said(exc: BaseException) -> str:
    """The error with the driver's DETAIL line (which names the key), wherever the chain of
    wrapped exceptions holds it."""
    said, seen = [str(exc)], exc
    for _ in range(4):  # SQLAlchemy's error, the dialect's, the driver's
        found = getattr(seen, "orig", None) or seen.__cause__
        if found is None:
            break
        seen = found
        if detail := getattr(seen, "detail", None):
            said.append(f"DETAIL: {detail}")
    return "\n".join(said)


class DuplicateIdentifiers(Exception):
    def __init__(self, taken: set[tuple[str, str]], index: int = 0) -> None:
        super().__init__(taken)
        self.taken = taken
        self.index = index
        """Which of several creates (``creates_in_one_statement``) it was."""


def taken_identifiers(
    message: str, attempted: list[tuple[str, str]], exact: bool = False
) -> set[tuple[str, str]]:
    """Which attempted identifiers the database reported as taken (all if it does not say,
    none then when ``exact``)."""
    match = _KEY_RE.search(message)
    if match:
        named = {pair for pair in attempted if match.group("key").endswith(f"{pair[0]}, {pair[1]}")}
        if named:
            return named
    return set() if exact else set(attempted)
