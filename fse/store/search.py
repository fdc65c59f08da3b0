"""Compile parsed search criteria into SQL over the index tables (lookups, never JSON scans)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select, true
from sqlalchemy.sql.elements import KeyedColumnElement

from fse.store.dates import MAX_INSTANT
from fse.store.indexing import normalize
from fse.store.query import ANY, Chain, Criterion, SearchQuery
from fse.store.tables import (
    INDEX_TABLES,
    idx_date,
    idx_quantity,
    idx_reference,
    idx_string,
    idx_token,
    resources,
)


def _date_match(
    prefix: str, low_col: Any, high_col: Any, low: Any, high: Any
) -> ColumnElement[bool]:
    """Range comparison of FHIR R4 §3.1.1.5.5: the target range [low_col, high_col]."""
    return {
        "eq": and_(low_col >= low, high_col <= high),
        "ne": or_(low_col < low, high_col > high),
        "gt": high_col > high,
        "lt": low_col < low,
        "ge": high_col >= low,
        "le": low_col <= high,
        "sa": low_col > high,
        "eb": high_col < low,
        "ap": and_(low_col <= high, high_col >= low),
    }[prefix]


def _number_match(prefix: str, col: Any, low: Any, high: Any) -> ColumnElement[bool]:
    return {
        "eq": and_(col >= low, col < high),
        "ne": or_(col < low, col >= high),
        "gt": col >= high,
        "lt": col < low,
        "ge": col >= low,
        "le": col < high,
        "sa": col >= high,
        "eb": col < low,
        "ap": and_(col >= low * Decimal("0.9"), col < high * Decimal("1.1")),
    }[prefix]


def _token_value(value: tuple[Any, str | None]) -> ColumnElement[bool]:
    system, code = value
    parts: list[ColumnElement[bool]] = []
    if code is not None:
        parts.append(idx_token.c.code == code)
    if system is None:
        parts.append(idx_token.c.system.is_(None))
    elif system is not ANY:
        parts.append(idx_token.c.system == system)
    return and_(*parts) if parts else true()


def _value_match(criterion: Criterion) -> ColumnElement[bool]:
    """The OR of the criterion's values, on its index table."""
    kind, values = criterion.kind, criterion.values
    if kind == "token":
        return or_(*(_token_value(v) for v in values))
    if kind == "string":
        if criterion.modifier == "exact":
            return idx_string.c.exact.in_(values)
        if criterion.modifier == "contains":
            return or_(
                *(idx_string.c.value.contains(normalize(v), autoescape=True) for v in values)
            )
        return or_(*(idx_string.c.value.startswith(normalize(v), autoescape=True) for v in values))
    if kind == "date":
        return or_(
            *(_date_match(p, idx_date.c.low, idx_date.c.high, lo, hi) for p, lo, hi in values)
        )
    if kind == "reference":
        return or_(
            *(
                and_(idx_reference.c.target_id == rid, idx_reference.c.target_type == rtype)
                if rtype
                else idx_reference.c.target_id == rid
                for rtype, rid in values
            )
        )
    return or_(
        *(
            and_(
                _number_match(p, idx_quantity.c.value, lo, hi),
                idx_quantity.c.system == system if system else true(),
                idx_quantity.c.code == code if code else true(),
            )
            for p, lo, hi, system, code in values
        )
    )


def _condition(
    rtype: str, criterion: Criterion | Chain, pk: KeyedColumnElement[Any]
) -> ColumnElement[bool]:
    if isinstance(criterion, Chain):
        return _chain_condition(rtype, criterion, pk)
    if criterion.kind == "id":
        return (
            resources.c.id.in_(criterion.values)
            if pk is resources.c.pk
            else _target_id(rtype, criterion, pk)
        )
    if criterion.kind == "lastUpdated":
        return _last_updated(rtype, criterion, pk)
    table = INDEX_TABLES[criterion.kind]
    scoped = select(table.c.resource_pk).where(
        table.c.type == rtype, table.c.param == criterion.param
    )
    if criterion.modifier == "missing":
        present = pk.in_(scoped)
        return not_(present) if criterion.values[0] else present
    matching = pk.in_(scoped.where(_value_match(criterion)))
    return not_(matching) if criterion.modifier == "not" else matching


def _target_id(
    rtype: str, criterion: Criterion, pk: KeyedColumnElement[Any]
) -> ColumnElement[bool]:
    target = resources.alias("id_target")
    return pk.in_(
        select(target.c.pk).where(target.c.type == rtype, target.c.id.in_(criterion.values))
    )


def _last_updated(
    rtype: str, criterion: Criterion, pk: KeyedColumnElement[Any]
) -> ColumnElement[bool]:
    target = resources if pk is resources.c.pk else resources.alias("lu_target")
    col = target.c.last_updated
    match = or_(*(_date_match(p, col, col, lo, hi) for p, lo, hi in criterion.values))
    if target is resources:
        return match
    return pk.in_(select(target.c.pk).where(target.c.type == rtype, match))


def _chain_condition(rtype: str, chain: Chain, pk: KeyedColumnElement[Any]) -> ColumnElement[bool]:
    target = resources.alias("chain_target")
    per_type = [
        and_(target.c.type == ttype, _condition(ttype, inner, target.c.pk))
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


def where_clause(query: SearchQuery) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [
        resources.c.type == query.resource_type,
        resources.c.deleted == false(),
    ]
    clauses.extend(_condition(query.resource_type, c, resources.c.pk) for c in query.criteria)
    return clauses


def sort_expression(query: SearchQuery) -> Any:
    """The keyset's leading column: _lastUpdated, a date parameter's earliest value, or pk."""
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
