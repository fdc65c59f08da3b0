"""Search statements are cached by shape; values are bound per request, never baked in."""

from __future__ import annotations

import pytest

from fse.store import search as compiler
from fse.store.query import SearchQuery, parse_search


def query(*items: tuple[str, str]) -> SearchQuery:
    return parse_search("Claim", list(items), default_count=20, max_count=200)


def test_same_shape_shares_one_statement_with_different_values() -> None:
    compiler._cache.clear()
    first, first_values = compiler.compile_search(query(("identifier", "sys|A")))
    second, second_values = compiler.compile_search(query(("identifier", "sys|B")))
    assert first is second
    assert first_values == {"p0": "A", "p1": "sys"}
    assert second_values == {"p0": "B", "p1": "sys"}


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("identifier", "sys|A"), ("identifier", "A")),
        (("identifier", "A"), ("identifier", "A,B")),
        (("created", "ge2026"), ("created", "le2026")),
        (("provider", "Practitioner/1"), ("provider", "1")),
        (("status", "active"), ("status:not", "active")),
        (("patient.identifier", "x"), ("patient.name", "x")),
    ],
)
def test_different_shapes_get_different_statements(
    one: tuple[str, str], other: tuple[str, str]
) -> None:
    a, _ = compiler.compile_search(query(one))
    b, _ = compiler.compile_search(query(other))
    assert a is not b


def test_every_value_is_bound_exactly_once() -> None:
    q = query(
        ("identifier", "s|1,2"),
        ("created", "ge2026-01-01"),
        ("patient.identifier", "s|x"),
        ("_id", "a,b"),
        ("_lastUpdated", "lt2030"),
    )
    statements, params = compiler.compile_search(q)
    compiled = statements.page.compile()
    names = {name for name in compiled.binds if name.startswith("p") and name[1:].isdigit()}
    assert names == set(params)


def test_like_patterns_escape_wildcards() -> None:
    assert compiler.like_pattern("50%_off", contains=False) == "50/%/_off%"
    assert compiler.like_pattern("Élo", contains=True) == "%elo%"
