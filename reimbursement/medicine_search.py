"""Finding a medicine as a doctor types it, so that what they type is the product they mean.

Whole words only, accents and case ignored, strengths compared as quantities
(``reimbursement.word_search``). Three tiers, in order: the exact name (chosen even when other
names start with it), then the names that start with what was typed, then the products whose
name, DCI, strength, form and pack hold every word typed. The first tier that finds something
decides: one product is the choice, several must be told apart. The last word typed may be
unfinished ("amoxi" finds AMOXIL) once it has three letters.

The index is built once per medicines list version (``index_of``) and answers in time that
grows with the words typed and the products they match, not with the list (the full CNOPS list
has ~6,000 presentations). Only reimbursable products are found: the only ones a care sheet
takes. Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reimbursement.core.medicines import Medicine
from reimbursement.word_search import (
    QUERY_MAX,
    Found,
    Position,
    WordIndex,
    contains,
    fold,
    kept_index,
    positions,
    starts_with,
    terms,
)

NO_MATCH = "Aucun médicament remboursable ne correspond."
SEVERAL = "Plusieurs médicaments correspondent ({names}) : précisez."
__all__ = ["QUERY_MAX", "Entry", "Found", "MedicineIndex", "index_of", "label_of", "resolve"]


@dataclass(frozen=True)
class Entry:
    """A reimbursable product as the screens name it."""

    medicine: Medicine
    label: str
    """Its name with the strength and pack when the name does not say them: unique in the
    list (the form, then the EAN, tell apart products the list names alike)."""
    words: tuple[Position, ...]


def _found(tiers: tuple[list[Entry], list[Entry], list[Entry]]) -> Found[Entry]:
    """A query's answer: the products of each tier (exact name, name start, words)."""
    return Found(tiers, NO_MATCH, SEVERAL)


@dataclass
class MedicineIndex:
    """The reimbursable products of one list version, indexed by word, ordered by label."""

    medicines: Mapping[str, Medicine]
    entries: list[Entry] = field(default_factory=list)
    by_ean: dict[str, int] = field(default_factory=dict)
    by_label: dict[str, int] = field(default_factory=dict)
    by_name: dict[str, list[int]] = field(default_factory=dict)
    words: WordIndex = field(default_factory=WordIndex)
    same_group: dict[tuple[str, str], list[Medicine]] = field(default_factory=dict)
    """The products of each generic group and box content (``Medicine.substitutes_for``)."""

    @classmethod
    def build(cls, medicines: Mapping[str, Medicine]) -> MedicineIndex:
        index = cls(medicines)
        read: dict[str, list[Position]] = {}

        def words(text: str) -> list[Position]:
            """``positions``, once per distinct text (DCIs, forms, strengths repeat)."""
            found = read.get(text)
            if found is None:
                found = read[text] = positions(text)
            return found

        products = [m for m in medicines.values() if m.reimbursable and m.ean == m.product]
        labelled = sorted(zip(_labels(products, words), products, strict=True), key=_order)
        for i, (label, medicine) in enumerate(labelled):
            index.entries.append(Entry(medicine, label, tuple(words(label))))
            index.by_ean[medicine.ean] = i
            index.by_label[fold(label)] = i
            index.by_name.setdefault(fold(medicine.name), []).append(i)
            texts = (label, medicine.dci, medicine.strength, medicine.form)
            index.words.add(i, (words(text) for text in texts))
            if medicine.group is not None:
                same = (medicine.group, medicine.pack)
                index.same_group.setdefault(same, []).append(medicine)
        for medicine in medicines.values():  # the same pack's other code finds it too
            if medicine.reimbursable and medicine.product in index.by_ean:
                index.by_ean.setdefault(medicine.ean, index.by_ean[medicine.product])
        index.words.seal()
        return index

    def search(self, text: str) -> Found[Entry]:
        text = text.strip()[:QUERY_MAX]
        folded = fold(text)
        if not folded:
            return _found(([], [], []))
        exact = (
            [self.by_ean[text]]
            if text in self.by_ean
            else [self.by_label[folded]]
            if folded in self.by_label
            else self.by_name.get(folded, [])
        )
        wanted = terms(text)
        found = self.words.holding(wanted)
        entries = self.entries
        starting = [i for i in found if starts_with(entries[i].words, wanted)]
        return _found(
            (
                [entries[i] for i in exact],
                [entries[i] for i in starting],
                [entries[i] for i in found],
            )
        )

    def label(self, medicine: Medicine) -> str:
        """How the screens name ``medicine``: name, strength, form and pack (a product not
        reimbursable, which the index leaves out, is named the same way)."""
        i = self.by_ean.get(medicine.ean)
        return self.entries[i].label if i is not None else _labels([medicine])[0]

    def substitutes(self, medicine: Medicine) -> list[Medicine]:
        """The reimbursable products that may replace ``medicine`` (its own product too), one
        code per product."""
        if medicine.group is None:
            return []
        return self.same_group.get((medicine.group, medicine.pack), [])


def _says_strength(name: list[Position], strength: list[Position]) -> bool:
    """Whether a name already gives the strength: as a quantity ("NOCAND 50 MG"), or as its
    bare numbers, as brands do ("GLUCOPHAGE 850" for 850 mg)."""
    if contains(name, strength):
        return True
    numbers = {key for p in strength for key in p if key[0] == "#"}
    return bool(numbers) and numbers <= {key for p in name for key in p}


def _order(labelled: tuple[str, Medicine]) -> tuple[str, str]:
    label, medicine = labelled
    return fold(label), medicine.ean


def _labels(
    products: list[Medicine], words: Callable[[str], list[Position]] = positions
) -> list[str]:
    """Each product's name, with its strength, form and pack when the name and pack do not say
    them; the form, then the EAN, added to names still shared, so that choosing a label is
    choosing a product."""
    labels = []
    for medicine in products:
        label = medicine.name
        if medicine.strength and not _says_strength(words(label), words(medicine.strength)):
            label += f" {medicine.strength}"
        said = words(f"{label} {medicine.presentation}")
        if medicine.form and not contains(said, words(medicine.form)):
            label += f" {medicine.form}"  # "COMPRIME DISPERSIBLE" when the pack says "COMPRIME"
        if medicine.presentation and not contains(words(label), words(medicine.presentation)):
            label += f", {medicine.presentation}"
        labels.append(label)
    for extra in (lambda m: m.form, lambda m: f"EAN {m.ean}"):
        folded = [fold(label) for label in labels]
        shared = Counter(folded)
        labels = [
            f"{label} ({extra(m)})"
            if shared[key] > 1 and not contains(words(label), words(extra(m)))
            else label
            for label, key, m in zip(labels, folded, products, strict=True)
        ]
    return labels


def label_of(medicine: Medicine, medicines: Mapping[str, Medicine]) -> str:
    """How every screen and document names ``medicine`` in the list version ``medicines``:
    the list's own names (the CNOPS "NOM") lack the strength and pack."""
    return index_of(medicines).label(medicine)


def index_of(medicines: Mapping[str, Medicine]) -> MedicineIndex:
    """The index of a list version's products, built the first time it is asked for
    (``medicines`` is a version's mapping, ``MedicineList.in_force``, which never changes)."""
    return kept_index(medicines, MedicineIndex.build)


def resolve(text: str, medicines: Mapping[str, Medicine]) -> tuple[Medicine | None, str]:
    """The one product ``text`` names (an EAN, even of a product no longer reimbursable, so
    the form can say so), or why not: none, or which ones to choose between."""
    text = text.strip()
    if text in medicines:
        return medicines[text], ""
    found = index_of(medicines).search(text)
    choice = found.choice
    return (choice.medicine, "") if choice is not None else (None, found.why)
