"""The access model itself: complete, free of typos, and shown as it is in docs/security.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from fse.security.access import (
    CELLS,
    NARROWED,
    PUBLIC,
    ROLE_ORDER,
    Rule,
    check_model,
    markdown_table,
    page_allows,
    page_roles,
    parse_cell,
    permission,
    reserved,
    role_grants,
    role_scopes,
)
from fse.security.scopes import allows, parse
from fse.security.users import Role
from fse.store.search_params import SUPPORTED_TYPES

DOCS = Path(__file__).parents[3] / "docs" / "security.md"


def test_every_served_type_has_a_row_and_every_owner_parameter_exists() -> None:
    check_model()
    assert set(CELLS) == set(SUPPORTED_TYPES)


@pytest.mark.parametrize(
    "text",
    ["rx", "crs:mine", "rs:own(nope)", "rs:looked-up(requester.nope)", "rr", "rs rs"],
)
def test_a_typo_in_a_cell_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cell("Claim", text)


def test_cells_read_as_written() -> None:
    cell = parse_cell("MedicationDispense", "c rs:own(prescription.requester)")
    assert cell["c"].rule is Rule.ALL
    assert (cell["r"].rule, cell["r"].via) == (Rule.OWN, "prescription.requester")
    assert parse_cell("MedicationRequest", "rs:looked-up")["s"].via == "patient"
    assert parse_cell("Claim", "-") == {}


def test_narrowed_writes_are_creates_only_and_no_person_updates_or_deletes() -> None:
    """Persons write only as themselves (creates checked against the rule); updates and
    deletes go through the flows, never a person's session."""
    for role in ROLE_ORDER:
        for rtype in SUPPORTED_TYPES:
            for letter in "ud":
                perm = permission(role, rtype, letter)
                assert perm is None or reserved(rtype, letter), (role, rtype, letter)
            created = permission(role, rtype, "c")
            assert created is None or created.rule in NARROWED, (role, rtype)


def test_a_roles_grants_mirror_its_cells() -> None:
    for role in ROLE_ORDER:
        grants = role_grants(role)
        assert parse(role_scopes(role)) == grants
        for rtype in SUPPORTED_TYPES:
            for letter in "cruds":
                expected = permission(role, rtype, letter) is not None
                assert allows(grants, rtype, letter) == expected, (role, rtype, letter)


def test_the_screens_open_to_their_roles() -> None:
    assert page_allows("/medecin/feuille/FSE-1", Role.PRESCRIBER)
    assert not page_allows("/medecin/feuille/FSE-1", Role.PHARMACIST)
    assert not page_allows("/pharmacie", Role.PRESCRIBER)
    assert page_allows("/espace", Role.LAB) and not page_allows("/espace", None)
    assert page_allows("/connexion", None) and page_roles("/static/fse/fse.css") == (PUBLIC,)
    assert page_roles("/medecinx") is None  # a section is a path and what is below it
    assert page_roles("/nouvelle-page") is None and not page_allows("/nouvelle-page", Role.LAB)


def test_docs_show_the_model_as_it_is() -> None:
    """docs/security.md carries the table `fse access` prints; paste it again if this fails."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("<!-- access-model:begin")
    block = text[text.index("\n", start) + 1 : text.index("<!-- access-model:end -->")]
    assert block == markdown_table()
