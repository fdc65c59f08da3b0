"""Finding a medicine as a doctor types it, so that what they type is the product they mean.

Whole words only, accents and case ignored ("1" never matches inside "12", "g" never inside
"mg"), strengths compared as quantities ("1 g" = "1g" = "1000 mg"). Three tiers, in order: the
exact name (chosen even when other names start with it), then the names that start with what was
typed, then the products whose name, DCI, strength, form and pack hold every word typed. The
first tier that finds something decides: one product is the choice, several must be told apart.
The last word typed may be unfinished ("amoxi" finds AMOXIL) once it has three letters.

The index is built once per medicines list version (``index_of``) and answers in time that
grows with the words typed and the products they match, not with the list (the full CNOPS list
has ~6,000 presentations). Only reimbursable products are found: the only ones a care sheet
takes. Pure: no I/O.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from fse.store.indexing import fold as fold_accents
from reimbursement.core.medicines import Medicine

NO_MATCH = "Aucun médicament remboursable ne correspond."
SHOWN_IN_MESSAGE = 6
PREFIX_MIN = 3
"""Letters the last word needs before it is taken as the beginning of a word."""
QUERY_MAX = 200
"""Characters of a query looked at: a name with its strength and pack is far shorter."""

_TOKEN = re.compile(r"(\d+(?:[.,]\d+)?)|([^\W\d_]+)|(%)")
UNITS: dict[str, tuple[Decimal, str]] = {
    "kg": (Decimal(1_000_000), "mg"),
    "g": (Decimal(1000), "mg"),
    "mg": (Decimal(1), "mg"),
    "μg": (Decimal("0.001"), "mg"),  # the micro sign, once folded, is the Greek mu
    "mcg": (Decimal("0.001"), "mg"),
    "ug": (Decimal("0.001"), "mg"),
    "ng": (Decimal("0.000001"), "mg"),
    "l": (Decimal(1000), "ml"),
    "cl": (Decimal(10), "ml"),
    "ml": (Decimal(1), "ml"),
    "ui": (Decimal(1), "ui"),
    "mui": (Decimal(1_000_000), "ui"),
    "%": (Decimal(1), "%"),
    "mmol": (Decimal(1), "mmol"),
    "mmole": (Decimal(1), "mmol"),
    "meq": (Decimal(1), "meq"),
}
"""Units of a strength, each as a factor of the one it is compared in."""

Position = frozenset[str]
"""What one word of a text matches: the word itself, or for a number its value ``#1`` and,
followed by a unit, its quantity ``=1000mg``."""


def fold(text: str) -> str:
    """Accents and case ignored, as the FHIR string search does (ASCII text, most of a
    medicines list, the quick way)."""
    return " ".join(text.casefold().split()) if text.isascii() else fold_accents(text)


def _number(text: str) -> str:
    if text.isdigit():
        return str(int(text))
    return format(Decimal(text.replace(",", ".")).normalize(), "f")


def positions(text: str) -> list[Position]:
    """The words of ``text``, folded, with each number and its unit read as one quantity."""
    found = _TOKEN.findall(fold(text[:QUERY_MAX]))
    out: list[Position] = []
    i, count = 0, len(found)
    while i < count:
        number, word, percent = found[i]
        if not number:
            out.append(frozenset((word or percent,)))
            i += 1
            continue
        value = _number(number)
        following = found[i + 1] if i + 1 < count else None
        unit = UNITS.get(following[1] or following[2]) if following else None
        if unit is None:
            out.append(frozenset(("#" + value,)))
            i += 1
            continue
        factor, dimension = unit
        quantity = format((Decimal(value) * factor).normalize(), "f")
        out.append(frozenset(("#" + value, "=" + quantity + dimension)))
        i += 2
    return out


def _signature(position: Position) -> str:
    """One key standing for a position: its quantity if it has one."""
    return min(position, key=lambda key: (key[0] != "=", key))


def _contains(text: list[Position], part: list[Position]) -> bool:
    """Whether ``part`` appears, word after word, in ``text`` ("1 g" in "X 1000 mg": yes)."""
    whole, wanted = [_signature(p) for p in text], [_signature(p) for p in part]
    return any(whole[i : i + len(wanted)] == wanted for i in range(len(whole) - len(wanted) + 1))


@dataclass(frozen=True)
class Term:
    key: str
    prefix: bool
    """The last word typed, maybe unfinished: any word starting with it matches."""


def terms(text: str) -> list[Term]:
    """What a query asks for: each word whole, a quantity by its value in its unit."""
    found = [_signature(p) for p in positions(text)]
    return [
        Term(key, i == len(found) - 1 and key[0] not in "#=" and len(key) >= PREFIX_MIN)
        for i, key in enumerate(found)
    ]


def _matches(term: Term, position: Position) -> bool:
    if term.key in position:
        return True
    return term.prefix and any(key.startswith(term.key) for key in position)


@dataclass(frozen=True)
class Entry:
    """A reimbursable product as the screens name it."""

    medicine: Medicine
    label: str
    """Its name with the strength and pack when the name does not say them: unique in the
    list (the form, then the EAN, tell apart products the list names alike)."""
    words: tuple[Position, ...]


@dataclass(frozen=True)
class Found:
    """A query's answer: the products of each tier (exact name, name start, words), best first."""

    tiers: tuple[list[Entry], list[Entry], list[Entry]]

    @property
    def deciding(self) -> list[Entry]:
        """The first tier that found something: what the choice is made between."""
        return next((tier for tier in self.tiers if tier), [])

    @property
    def choice(self) -> Entry | None:
        deciding = self.deciding
        return deciding[0] if len(deciding) == 1 else None

    @property
    def ranked(self) -> list[Entry]:
        """Every product found, once, the best tiers first (what the suggestions list)."""
        seen: set[str] = set()
        out = []
        for tier in self.tiers:
            for entry in tier:
                if entry.medicine.ean not in seen:
                    seen.add(entry.medicine.ean)
                    out.append(entry)
        return out

    @property
    def why(self) -> str:
        """Why there is no choice ("" when there is one)."""
        deciding = self.deciding
        if len(deciding) == 1:
            return ""
        if not deciding:
            return NO_MATCH
        names = " ; ".join(e.label for e in deciding[:SHOWN_IN_MESSAGE])
        more = len(deciding) - SHOWN_IN_MESSAGE
        if more > 0:
            names += f" et {more} autre(s)"
        return f"Plusieurs médicaments correspondent ({names}) : précisez."


@dataclass
class MedicineIndex:
    """The reimbursable products of one list version, indexed by word, ordered by label."""

    medicines: Mapping[str, Medicine]
    entries: list[Entry] = field(default_factory=list)
    by_ean: dict[str, int] = field(default_factory=dict)
    by_label: dict[str, int] = field(default_factory=dict)
    by_name: dict[str, list[int]] = field(default_factory=dict)
    postings: dict[str, set[int]] = field(default_factory=dict)
    vocabulary: list[str] = field(default_factory=list)
    """The words (not numbers), sorted: an unfinished word is a range of it."""
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
            for key in {key for text in texts for p in words(text) for key in p}:
                index.postings.setdefault(key, set()).add(i)
            if medicine.group is not None:
                same = (medicine.group, medicine.pack)
                index.same_group.setdefault(same, []).append(medicine)
        for medicine in medicines.values():  # the same pack's other code finds it too
            if medicine.reimbursable and medicine.product in index.by_ean:
                index.by_ean.setdefault(medicine.ean, index.by_ean[medicine.product])
        index.vocabulary = sorted(k for k in index.postings if k[0] not in "#=")
        return index

    def search(self, text: str) -> Found:
        text = text.strip()[:QUERY_MAX]
        folded = fold(text)
        if not folded:
            return Found(([], [], []))
        exact = (
            [self.by_ean[text]]
            if text in self.by_ean
            else [self.by_label[folded]]
            if folded in self.by_label
            else self.by_name.get(folded, [])
        )
        wanted = terms(text)
        found = self._holding(wanted)
        starting = [i for i in found if self._starts_with(i, wanted)]
        entries = self.entries
        return Found(
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

    def _holding(self, wanted: list[Term]) -> list[int]:
        """The products holding every term, in label order."""
        if not wanted:
            return []
        sets = sorted((self._posting(term) for term in wanted), key=len)
        return sorted(set.intersection(*sets)) if sets[0] else []

    def _posting(self, term: Term) -> set[int]:
        if not term.prefix:
            return self.postings.get(term.key, set())
        found: set[int] = set()
        start = bisect_left(self.vocabulary, term.key)
        for word in self.vocabulary[start:]:
            if not word.startswith(term.key):
                break
            found |= self.postings[word]
        return found

    def _starts_with(self, i: int, wanted: list[Term]) -> bool:
        words = self.entries[i].words
        return len(wanted) <= len(words) and all(
            _matches(term, position) for term, position in zip(wanted, words, strict=False)
        )


def _says_strength(name: list[Position], strength: list[Position]) -> bool:
    """Whether a name already gives the strength: as a quantity ("NOCAND 50 MG"), or as its
    bare numbers, as brands do ("GLUCOPHAGE 850" for 850 mg)."""
    if _contains(name, strength):
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
        if medicine.form and not _contains(said, words(medicine.form)):
            label += f" {medicine.form}"  # "COMPRIME DISPERSIBLE" when the pack says "COMPRIME"
        if medicine.presentation and not _contains(words(label), words(medicine.presentation)):
            label += f", {medicine.presentation}"
        labels.append(label)
    for extra in (lambda m: m.form, lambda m: f"EAN {m.ean}"):
        folded = [fold(label) for label in labels]
        shared = Counter(folded)
        labels = [
            f"{label} ({extra(m)})"
            if shared[key] > 1 and not _contains(words(label), words(extra(m)))
            else label
            for label, key, m in zip(labels, folded, products, strict=True)
        ]
    return labels


_INDEXES: dict[int, tuple[Mapping[str, Medicine], MedicineIndex]] = {}
KEPT = 8
"""Indexes kept: the versions in force lately (a published version brings a new one)."""


def label_of(medicine: Medicine, medicines: Mapping[str, Medicine]) -> str:
    """How every screen and document names ``medicine`` in the list version ``medicines``:
    the list's own names (the CNOPS "NOM") lack the strength and pack."""
    return index_of(medicines).label(medicine)


def index_of(medicines: Mapping[str, Medicine]) -> MedicineIndex:
    """The index of a list version's products, built the first time it is asked for.

    ``medicines`` is a version's mapping (``MedicineList.in_force``), which never changes; it
    is kept with its index so that its id is not reused while the index is."""
    kept = _INDEXES.get(id(medicines))
    if kept is not None and kept[0] is medicines:
        return kept[1]
    index = MedicineIndex.build(medicines)
    _INDEXES[id(medicines)] = (medicines, index)
    while len(_INDEXES) > KEPT:
        del _INDEXES[next(iter(_INDEXES))]
    return index


def resolve(text: str, medicines: Mapping[str, Medicine]) -> tuple[Medicine | None, str]:
    """The one product ``text`` names (an EAN, even of a product no longer reimbursable, so
    the form can say so), or why not: none, or which ones to choose between."""
    text = text.strip()
    if text in medicines:
        return medicines[text], ""
    found = index_of(medicines).search(text)
    choice = found.choice
    return (choice.medicine, "") if choice is not None else (None, found.why)
