"""Finding the medicine a doctor types in the list the platform ships (the CNOPS list, 5,917
presentations): whole words, strengths as quantities, the exact name first, then names starting
with the text, then every word of name, DCI, strength and form."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from prescriber.visit import find_medicine
from reimbursement.core.medicines import Medicine
from reimbursement.medicine_search import index_of
from reimbursement.reference_data import default_books

TODAY = date(2026, 11, 22)
BIOMOX_1G_12 = "6118000070207"  # BIOMOX 1 G COMPRIME DISPERSIBLE, 1 BOITE 12 COMPRIME
STREPTOCID_500_GELULES = "6118000090854"
CLAMOXYL_1G_12 = "6118000160359"


def shipped() -> dict[str, Medicine]:
    return dict(default_books().medicines.in_force(TODAY))


def chosen(text: str, medicines: dict[str, Medicine]) -> str | None:
    found, _ = find_medicine(text, medicines)
    return found.ean if found is not None else None


@pytest.mark.parametrize(
    "typed",
    [
        "BIOMOX 1 G 12",  # the name as the doctor reads it, with its strength and pack
        "biomox 1g 12",
        "Biomox 1000 mg boîte 12",  # the list says 1 G: the same quantity
        "biomox 1 g dispersible 12",
        "BIOMOX 1 G COMPRIME DISPERSIBLE, 1 BOITE 12 COMPRIME",  # the label, whole
        BIOMOX_1G_12,
    ],
)
def test_a_name_with_its_strength_is_the_one_product(typed: str) -> None:
    assert chosen(typed, shipped()) == BIOMOX_1G_12


def test_a_number_or_a_unit_never_matches_inside_another_word() -> None:
    """ "1" is not in "12" nor "125", "g" not in "mg": CLAMOXYL 1 G, never 125 MG."""
    medicines = shipped()
    none, why = find_medicine("clamoxyl 1", medicines)
    assert none is None
    assert "CLAMOXYL 1 G COMPRIME DISPERSIBLE, 1 BOITE 12 COMPRIME" in why
    assert "125 MG" not in why and "500 MG" not in why and "250 MG" not in why
    assert chosen("STREPTOCID 500 gélule", medicines) == STREPTOCID_500_GELULES
    twelve = replace(
        medicines[STREPTOCID_500_GELULES],
        ean="6118009999992",
        product="6118009999992",
        name="STREPTOCID 12 MG",
        strength="12 MG",
    )
    both = {**medicines, twelve.ean: twelve}
    assert chosen("STREPTOCID 12 mg", both) == twelve.ean
    assert chosen("STREPTOCID 12", both) == twelve.ean  # the name starting so wins


def test_the_exact_label_is_chosen_even_when_other_labels_start_with_it() -> None:
    medicines = shipped()
    base = medicines["6118000040347"]
    label = index_of(medicines).label(base)
    assert label == "DOLIPRANE 500 MG COMPRIME SECABLE, 1 BOITE 20 COMPRIME"
    longer = replace(base, ean="6118009999985", product="6118009999985", name=f"{label} ENFANT")
    both = {**medicines, longer.ean: longer}
    assert chosen(label, both) == base.ean
    assert chosen(f"{label} enfant", both) == longer.ean


def test_then_the_start_of_the_name_then_the_dci_and_form() -> None:
    medicines = shipped()
    none, why = find_medicine("zovirax", medicines)  # tablets, infusion, eye ointment
    assert none is None and why.count("ZOVIRAX") == 3
    assert chosen("zovirax 200", medicines) == "6118001141531"
    assert chosen("cetamyl 500 mg 20", medicines) == "6118000190219"
    none, why = find_medicine("aciclovir", medicines)  # the DCI: every aciclovir product
    assert none is None and "CICLOVIRAL" in why and "ACIVIR" in why
    none, why = find_medicine("metformine 1 g", medicines)
    assert none is None and "GLUCOPHAGE 1000" in why and "METFORMINE WIN 1000 MG" in why
    assert chosen("metformine 1 g glucophage", medicines) == "6118000081333"
    assert chosen("levothyroxine 100 mcg", medicines) == "6118001100323"  # µg, however written
    assert chosen("doliprane 1 g effervescent", medicines) == "6118000040361"
    assert chosen("doliprane 1000 mg suppositoire", medicines) == "6118000040323"
    assert find_medicine("vitamine z", medicines) == (
        None,
        "Aucun médicament remboursable ne correspond.",
    )


def test_the_products_the_issue_names_are_found_by_name_dci_or_ean() -> None:
    medicines = shipped()
    none, why = find_medicine("CLAMOXYL 1 g", medicines)  # three packs: which one?
    assert none is None and why.count("CLAMOXYL 1 G") == 3
    assert chosen("CLAMOXYL 1 g 12", medicines) == CLAMOXYL_1G_12
    none, why = find_medicine("DOLIPRANE 300 mg", medicines)  # suppositories or sachets
    assert none is None and "SUPPOSITOIRE" in why and "SACHET" in why
    assert chosen("doliprane 300 mg sachet", medicines) == "6118000040279"
    assert chosen("paracetamol 300 mg suppositoire doliprane", medicines) == "6118000040316"
    assert chosen("6118000040279", medicines) == "6118000040279"
    # a code with a wrong check digit, as the list publishes it, is its product
    assert chosen("6118000140213", medicines) == "6118000140213"


def test_labels_name_one_product_each_and_find_it() -> None:
    medicines = shipped()
    index = index_of(medicines)
    labels = [e.label for e in index.entries]
    assert len(labels) == len(set(labels))  # choosing a label is choosing one product
    assert len(index.entries) == 3458  # reimbursable products, each pack once
    for entry in index.entries[::25]:  # each product's label names it and only it
        assert chosen(entry.label, medicines) == entry.medicine.ean, entry.label
    # the same pack under its other code is one entry, found by either code
    assert index.search("6118000250807").choice is index.search("6118010116209").choice
    every = index.search("paracetamol").ranked
    assert len(every) > 20 and all("PARACETAMOL" in e.medicine.dci for e in every[:20])


def test_the_index_is_built_once_per_list_version() -> None:
    medicines = default_books().medicines.in_force(TODAY)
    assert index_of(medicines) is index_of(medicines)
