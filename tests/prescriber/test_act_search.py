"""Finding an NGAP act as a doctor types it: its code (any case) first, then codes and labels
starting with the text, then labels holding its words (accents and case ignored, the last word
possibly unfinished), in the nomenclature's order."""

from __future__ import annotations

from datetime import date

from reimbursement.act_search import act_index, resolve_act
from reimbursement.core.ngap_acts import ActListVersion
from reimbursement.reference_data import default_books

TODAY = date(2026, 12, 3)


def acts() -> ActListVersion:
    version = default_books().acts.in_force(TODAY)
    assert version is not None
    return version


def codes(text: str) -> list[str]:
    return [entry.act.code for entry in act_index(acts()).search(text).ranked]


def test_a_code_is_found_whatever_its_case_and_first() -> None:
    assert resolve_act("J329", acts())[0].label == "Appendicectomie à ciel ouvert"  # type: ignore[union-attr]
    assert resolve_act(" j329 ", acts())[0].code == "J329"  # type: ignore[union-attr]
    assert codes("J32")[:3] == ["J320", "J321", "J322"]  # the codes starting with it, in order
    assert resolve_act("J32", acts())[0] is None  # ten acts: the doctor chooses


def test_label_words_ignore_accents_and_case_and_the_last_may_be_unfinished() -> None:
    for typed in ("appendicectomie", "APPENDICECTOMIE", "Appendicectomie", "appendic"):
        assert codes(typed)[:3] == ["J329", "J330", "Z300"], typed
    act, why = resolve_act("appendicectomie", acts())
    assert act is None and why.startswith("Plusieurs actes correspondent (J329 — Appendicectomie")
    assert resolve_act("appendicectomie ciel ouvert", acts())[0].code == "J329"  # type: ignore[union-attr]
    assert resolve_act("gastrectomie totale", acts())[0].code == "J318"  # type: ignore[union-attr]
    assert "J203" in codes("hernie aine")  # "l'aine" is the word "aine"
    assert codes("femur")[:1] == ["A115"]  # "Fémur"
    assert codes("app") != [] and codes("ap") == []  # three letters before a prefix counts


def test_labels_starting_with_the_words_come_before_labels_holding_them() -> None:
    found = codes("gastrectomie")
    assert found[:2] == ["J318", "J319"]  # "Gastrectomie totale", "Gastrectomie élargie…"
    starting = act_index(acts()).search("gastrectomie").tiers[1]
    assert all(e.act.label.lower().startswith("gastrectomie") for e in starting)
    assert len(found) > len(starting)  # then acts whose label holds the word later on


def test_the_code_printed_for_two_acts_is_told_apart_by_its_label() -> None:
    act, why = resolve_act("T100", acts())
    assert act is None and "Bilan radiologique complet du coude" in why
    chosen, _ = resolve_act(
        "Bilan radiologique complet du coude, minimum de quatre incidences", acts()
    )
    assert chosen is not None and chosen.code == "T100" and chosen.coefficient == 22
    assert chosen.limit is None  # an ambiguous code limits nothing


def test_an_unknown_act_says_how_to_name_one() -> None:
    act, why = resolve_act("Q999", acts())
    assert act is None and why.startswith("Aucun acte de la liste NGAP ne correspond")
    assert resolve_act("J329", None)[0] is None  # no list in force: nothing is guessed
