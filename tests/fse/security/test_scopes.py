"""SMART v2 (and v1) system scopes."""

from __future__ import annotations

import pytest

from fse.security.scopes import InvalidScope, allows, parse, within


def test_v2_letters_wildcards_and_v1_names() -> None:
    grants = parse("system/Claim.rs system/*.c system/Patient.read")
    assert allows(grants, "Claim", "r") and allows(grants, "Claim", "s")
    assert not allows(grants, "Claim", "u")
    assert allows(grants, "Coverage", "c")
    assert allows(grants, "Patient", "s") and not allows(grants, "Patient", "d")
    assert parse("system/*.write")[0].permissions == frozenset("cud")


@pytest.mark.parametrize(
    "bad", ["user/Claim.rs", "system/Claim.sr", "system/claim.rs", "system/Claim", "system/Claim.x"]
)
def test_invalid_scopes_are_refused(bad: str) -> None:
    with pytest.raises(InvalidScope):
        parse(bad)


def test_a_token_may_ask_only_for_a_subset() -> None:
    granted = parse("system/Claim.rs system/Patient.cruds")
    assert within(parse("system/Claim.r system/Patient.c"), granted)
    assert not within(parse("system/Claim.c"), granted)
    assert not within(parse("system/*.r"), granted)
    assert within(parse("system/*.r"), parse("system/*.rs"))
