"""Compile parsed search criteria into SQL over the index tables (lookups, never JSON scans).

Building SQLAlchemy expressions costs about as much as running the query, so statements are
cached by the *shape* of a search (parameters, modifiers, prefixes, value kinds) with named bind
parameters ``p0, p1, ...``; a repeat search only binds its values. ``values_of`` lists the values
in the order the builder consumes them, and the builder checks that it consumed them all.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    tuple_,
)
from sqlalchemy.sql.elements import KeyedColumnElement

from fse.store.dates import MAX_INSTANT
from fse.store.indexing import STRING_MAX, normalize
from fse.store.query import ANY, Chain, Criterion, SearchQuery
from fse.store.search_params import has_few_values
from fse.store.tables import (
    INDEX_TABLES,
    PrimaryKey,
    UtcDateTime,
    idx_date,
    idx_quantity,
    idx_reference,
    idx_string,
    idx_token,
    resources,
)

CACHE_SIZE = 512
BOUNDS_USED = {
    "eq": (True, True),
    "ne": (True, True),
    "ap": (True, True),
    "gt": (False, True),
    "le": (False, True),
    "sa": (False, True),
    "lt": (True, False),
    "ge": (True, False),
    "eb": (True, False),
}
"""Which of (low, high) of the search value a prefix compares against."""
LIKE_ESCAPE = "/"
CUT_VALUE = "_" * STRING_MAX
"""LIKE pattern of an indexed string of STRING_MAX characters: possibly cut, so a ``:contains``
needle may lie past the index; ``fse.store.string_match`` compares such rows whole."""


class Binder:
    """Hands out bind parameters for the precomputed values, in order."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.used = 0

    def __call__(self, expanding: bool = False, type_: Any = None) -> BindParameter[Any]:
        name = f"p{self.used}"
        self.used += 1
        return bindparam(name, expanding=expanding, type_=type_)


def like_pattern(text: str, contains: bool) -> str:
    escaped = "".join(LIKE_ESCAPE + c if c in "%_" + LIKE_ESCAPE else c for c in normalize(text))
    return f"%{escaped}%" if contains else f"{escaped}%"


# -- values, in the order the builder consumes them --------------------------------------------


def _criterion_values(criterion: Criterion | Chain) -> list[Any]:
    if isinstance(criterion, Chain):
        return [v for inner in criterion.inner.values() for v in _criterion_values(inner)]
    kind, values = criterion.kind, criterion.values
    if criterion.modifier == "missing":
        return []
    if kind == "token":
        out: list[Any] = []
        for system, code in values:
            out += [code] if code is not None else []
            out += [system] if isinstance(system, str) else []
        return out
    if kind == "string":
        if criterion.modifier == "exact":  # as indexed; longer values are compared afterwards
            return [[v[:STRING_MAX] for v in values]]
        if criterion.modifier == "contains":  # and every value cut by the index, compared after
            return [like_pattern(v, True) for v in values] + [CUT_VALUE]
        return [like_pattern(v, False) for v in values]
    if kind in ("date", "lastUpdated"):
        return [v for prefix, low, high in values for v in _bounds(prefix, low, high)]
    if kind == "reference":
        return [v for rtype, rid in values for v in ([rid, rtype] if rtype else [rid])]
    if kind == "id":
        return [list(values)]
    return [
        v
        for prefix, low, high, system, code in values
        for v in (
            *_bounds(prefix, low, high),
            *([system] if system else []),
            *([code] if code else []),
        )
    ]


def _bounds(prefix: str, low: Any, high: Any) -> list[Any]:
    use_low, use_high = BOUNDS_USED[prefix]
    return [*([low] if use_low else []), *([high] if use_high else [])]


def values_of(query: SearchQuery) -> list[Any]:
    values = [v for c in query.criteria for v in _criterion_values(c)]
    if query.cursor is not None:
        sort_value, pk = query.cursor
        values += [sort_value, pk] if query.sort is not None else [pk]
    return values


# -- shapes: everything that changes the SQL text ----------------------------------------------


def _criterion_shape(criterion: Criterion | Chain) -> tuple[Any, ...]:
    if isinstance(criterion, Chain):
        inner = tuple((t, _criterion_shape(c)) for t, c in criterion.inner.items())
        return ("chain", criterion.param, inner)
    kind, values, head = criterion.kind, criterion.values, (criterion.kind, criterion.param)
    if criterion.modifier == "missing":
        return (*head, "missing", values[0])
    if kind == "token":
        systems = tuple(
            ("any" if s is ANY else "null" if s is None else "val", c is None) for s, c in values
        )
        return (*head, criterion.modifier, systems)
    if kind == "string":
        return (*head, criterion.modifier, 1 if criterion.modifier == "exact" else len(values))
    if kind in ("date", "lastUpdated"):
        return (*head, tuple(v[0] for v in values))
    if kind == "reference":
        return (*head, tuple(bool(t) for t, _ in values))
    if kind == "id":
        return head
    return (*head, tuple((p, bool(s), bool(c)) for p, _, _, s, c in values))


def shape_of(query: SearchQuery) -> tuple[Any, ...]:
    return (
        query.resource_type,
        tuple(_criterion_shape(c) for c in query.criteria),
        query.sort,
        query.cursor is not None,
        query.count,
    )


# -- the builder -------------------------------------------------------------------------------


def _bind_bounds(prefix: str, b: Binder) -> tuple[Any, Any]:
    use_low, use_high = BOUNDS_USED[prefix]
    return (b() if use_low else None), (b() if use_high else None)


def _date_match(prefix: str, low_col: Any, high_col: Any, b: Binder) -> ColumnElement[bool]:
    """Range comparison of FHIR R4 §3.1.1.5.5 against the target range [low_col, high_col]."""
    low, high = _bind_bounds(prefix, b)
    match prefix:
        case "eq":
            return and_(low_col >= low, high_col <= high)
        case "ne":
            return or_(low_col < low, high_col > high)
        case "gt":
            return high_col > high
        case "lt":
            return low_col < low
        case "ge":
            return high_col >= low
        case "le":
            return low_col <= high
        case "sa":
            return low_col > high
        case "eb":
            return high_col < low
        case _:
            return and_(low_col <= high, high_col >= low)


def _number_match(prefix: str, col: Any, b: Binder) -> ColumnElement[bool]:
    low, high = _bind_bounds(prefix, b)
    match prefix:
        case "eq":
            return and_(col >= low, col < high)
        case "ne":
            return or_(col < low, col >= high)
        case "gt" | "sa":
            return col >= high
        case "lt" | "eb":
            return col < low
        case "ge":
            return col >= low
        case "le":
            return col < high
        case _:
            return and_(col >= low * Decimal("0.9"), col < high * Decimal("1.1"))


def _token_value(value: tuple[Any, str | None], b: Binder) -> ColumnElement[bool]:
    system, code = value
    parts: list[ColumnElement[bool]] = []
    if code is not None:
        parts.append(idx_token.c.code == b())
    if system is None:
        parts.append(idx_token.c.system.is_(None))
    elif system is not ANY:
        parts.append(idx_token.c.system == b())
    return and_(*parts)


def _value_match(criterion: Criterion, b: Binder) -> ColumnElement[bool]:
    """The OR of the criterion's values, on its index table."""
    kind, values = criterion.kind, criterion.values
    if kind == "token":
        return or_(*(_token_value(v, b) for v in values))
    if kind == "string":
        if criterion.modifier == "exact":
            return idx_string.c.exact.in_(b(expanding=True))
        patterns = len(values) + (1 if criterion.modifier == "contains" else 0)
        return or_(*(idx_string.c.value.like(b(), escape=LIKE_ESCAPE) for _ in range(patterns)))
    if kind == "date":
        return or_(*(_date_match(v[0], idx_date.c.low, idx_date.c.high, b) for v in values))
    if kind == "reference":
        ref = idx_reference.c
        return or_(
            *(
                and_(ref.target_id == b(), ref.target_type == b())
                if rtype
                else ref.target_id == b()
                for rtype, _ in values
            )
        )
    q = idx_quantity.c
    return or_(
        *(
            and_(
                _number_match(prefix, q.value, b),
                *([q.system == b()] if system else []),
                *([q.code == b()] if code else []),
            )
            for prefix, _, _, system, code in values
        )
    )


def _condition(
    rtype: str,
    criterion: Criterion | Chain,
    pk: KeyedColumnElement[Any],
    b: Binder,
    on_candidates: bool = False,
) -> ColumnElement[bool]:
    """``on_candidates``: checked on each row the other criteria find, by its resource key
    (``_checked_on_candidates``)."""
    if isinstance(criterion, Chain):
        return _chain_condition(rtype, criterion, pk, b)
    if criterion.kind in ("id", "lastUpdated"):
        return _on_resource_row(rtype, criterion, pk, b)
    table = INDEX_TABLES[criterion.kind]
    scoped = select(table.c.resource_pk).where(
        table.c.type == rtype, table.c.param == criterion.param
    )
    if criterion.modifier == "missing":
        present = pk.in_(scoped)
        return not_(present) if criterion.values[0] else present
    if on_candidates:
        # OFFSET keeps the subquery a check per candidate: PostgreSQL may not turn it into a
        # join it would drive from this side.
        return exists(scoped.where(table.c.resource_pk == pk, _value_match(criterion, b)).offset(0))
    matching = pk.in_(scoped.where(_value_match(criterion, b)))
    return not_(matching) if criterion.modifier == "not" else matching


def _on_resource_row(
    rtype: str, criterion: Criterion, pk: KeyedColumnElement[Any], b: Binder
) -> ColumnElement[bool]:
    """_id and _lastUpdated: columns of the resource row itself (or of a chained target)."""
    target = resources if pk is resources.c.pk else resources.alias("row_target")
    if criterion.kind == "id":
        match = target.c.id.in_(b(expanding=True))
    else:
        col = target.c.last_updated
        match = or_(*(_date_match(v[0], col, col, b) for v in criterion.values))
    if target is resources:
        return match
    return pk.in_(select(target.c.pk).where(target.c.type == rtype, match))


def _chain_condition(
    rtype: str, chain: Chain, pk: KeyedColumnElement[Any], b: Binder
) -> ColumnElement[bool]:
    target = resources.alias("chain_target")
    per_type = [
        and_(target.c.type == ttype, _condition(ttype, inner, target.c.pk, b))
        for ttype, inner in chain.inner.items()
    ]
    linked = (
        select(idx_reference.c.resource_pk)
        .join(
            target,
            and_(
                target.c.type == idx_reference.c.target_type,
                target.c.id == idx_reference.c.target_id,
            ),
        )
        .where(
            idx_reference.c.type == rtype,
            idx_reference.c.param == chain.param,
            target.c.deleted == false(),
            or_(*per_type),
        )
    )
    return pk.in_(linked)


def sort_expression(query: SearchQuery) -> Any:
    """The keyset's leading column: _lastUpdated, a date parameter's earliest value, or none."""
    if query.sort is None:
        return None
    name, _ = query.sort
    if name == "_lastUpdated":
        return resources.c.last_updated
    earliest = (
        select(func.min(idx_date.c.low))
        .where(
            idx_date.c.resource_pk == resources.c.pk,
            idx_date.c.type == query.resource_type,
            idx_date.c.param == name,
        )
        .scalar_subquery()
    )
    return func.coalesce(earliest, MAX_INSTANT.replace(tzinfo=None))


@dataclass(frozen=True)
class SearchStatements:
    page: Select[Any]
    """Columns pk, id, content, sort_key; count + 1 rows at most."""
    count: Select[Any]


def _checked_on_candidates(query: SearchQuery) -> list[bool]:
    """Per criterion, whether it is checked on the candidates of the others: a plain token of a
    parameter with few values (``MedicationRequest?subject=…&status=active``) beside a
    criterion that finds its own rows (not one of those, not ``:not`` or ``:missing``).
    Otherwise a prepared statement's generic plan, which cannot tell ``active`` from an
    insured's id, may start from every active prescription of the country and keep the
    insured's two (tens of milliseconds, growing with the registry)."""
    few = [
        isinstance(c, Criterion)
        and c.kind == "token"
        and c.modifier is None
        and has_few_values(query.resource_type, c.param)
        for c in query.criteria
    ]
    drives = any(
        not is_few and not (isinstance(c, Criterion) and c.modifier in ("not", "missing"))
        for c, is_few in zip(query.criteria, few, strict=True)
    )
    return few if drives else [False] * len(few)


def _build(query: SearchQuery, value_count: int) -> SearchStatements:
    b = Binder(value_count)
    clauses = [resources.c.type == query.resource_type, resources.c.deleted == false()]
    clauses += [
        _condition(query.resource_type, c, resources.c.pk, b, checked)
        for c, checked in zip(query.criteria, _checked_on_candidates(query), strict=True)
    ]
    count = select(func.count()).select_from(resources).where(*clauses)
    sort = sort_expression(query)
    key = sort if sort is not None else resources.c.pk
    descending = bool(query.sort and query.sort[1])
    page = select(resources.c.pk, resources.c.id, resources.c.content, key.label("sort_key")).where(
        *clauses
    )
    if query.cursor is not None:
        left = tuple_(sort, resources.c.pk) if sort is not None else resources.c.pk
        right = tuple_(b(type_=UtcDateTime()), b(type_=PrimaryKey)) if sort is not None else b()
        page = page.where(left < right if descending else left > right)
    order = [key, resources.c.pk] if sort is not None else [resources.c.pk]
    page = page.order_by(*(c.desc() if descending else c.asc() for c in order))
    if b.used != b.count:
        raise AssertionError(f"search builder bound {b.used} values, expected {b.count}")
    return SearchStatements(page.limit(query.count + 1), count)


_cache: OrderedDict[tuple[Any, ...], SearchStatements] = OrderedDict()


def compile_search(query: SearchQuery) -> tuple[SearchStatements, dict[str, Any]]:
    """Statements for the query's shape (cached) and the values to bind."""
    values = values_of(query)
    key = shape_of(query)
    statements = _cache.get(key)
    if statements is None:
        statements = _build(query, len(values))
        _cache[key] = statements
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return statements, {f"p{i}": v for i, v in enumerate(values)}
