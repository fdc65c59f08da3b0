"""Whole-word search over short French texts (medicine names, act labels), the one matcher of
the doctor's and pharmacist's fields and their suggestions.

Accents and case ignored, whole words only ("1" never matches inside "12", "g" never inside
"mg"), a number followed by its unit read as a quantity ("1 g" = "1g" = "1000 mg"), and the
last word typed may be unfinished once it has ``PREFIX_MIN`` letters. ``WordIndex`` answers in
time that grows with the words typed and the entries they match, not with the list. Pure.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from fse.store.indexing import fold as fold_accents

PREFIX_MIN = 3
"""Letters the last word needs before it is taken as the beginning of a word."""
QUERY_MAX = 200
"""Characters of a query looked at: a name with its strength and pack, an act's label words,
are far shorter."""

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


def signature(position: Position) -> str:
    """One key standing for a position: its quantity if it has one."""
    return min(position, key=lambda key: (key[0] != "=", key))


def contains(text: list[Position], part: list[Position]) -> bool:
    """Whether ``part`` appears, word after word, in ``text`` ("1 g" in "X 1000 mg": yes)."""
    whole, wanted = [signature(p) for p in text], [signature(p) for p in part]
    return any(whole[i : i + len(wanted)] == wanted for i in range(len(whole) - len(wanted) + 1))


@dataclass(frozen=True)
class Term:
    key: str
    prefix: bool
    """The last word typed, maybe unfinished: any word starting with it matches."""


def terms(text: str) -> list[Term]:
    """What a query asks for: each word whole, a quantity by its value in its unit."""
    found = [signature(p) for p in positions(text)]
    return [
        Term(key, i == len(found) - 1 and key[0] not in "#=" and len(key) >= PREFIX_MIN)
        for i, key in enumerate(found)
    ]


def matches(term: Term, position: Position) -> bool:
    if term.key in position:
        return True
    return term.prefix and any(key.startswith(term.key) for key in position)


SHOWN_IN_MESSAGE = 6


class Labelled(Protocol):
    @property
    def label(self) -> str: ...


E = TypeVar("E", bound=Labelled)


@dataclass(frozen=True)
class Found(Generic[E]):
    """A query's answer: the entries of each tier (exact, start, words), best first."""

    tiers: tuple[list[E], list[E], list[E]]
    none: str
    """Why there is no choice when nothing matches."""
    several: str
    """Why there is no choice among several: ``{names}`` lists the first ones."""

    @property
    def deciding(self) -> list[E]:
        """The first tier that found something: what the choice is made between."""
        return next((tier for tier in self.tiers if tier), [])

    @property
    def choice(self) -> E | None:
        deciding = self.deciding
        return deciding[0] if len(deciding) == 1 else None

    @property
    def ranked(self) -> list[E]:
        """Every entry found, once, the best tiers first (what the suggestions list)."""
        seen: set[int] = set()
        out = []
        for tier in self.tiers:
            for entry in tier:
                if id(entry) not in seen:
                    seen.add(id(entry))
                    out.append(entry)
        return out

    @property
    def why(self) -> str:
        """Why there is no choice ("" when there is one)."""
        deciding = self.deciding
        if len(deciding) == 1:
            return ""
        if not deciding:
            return self.none
        names = " ; ".join(e.label for e in deciding[:SHOWN_IN_MESSAGE])
        more = len(deciding) - SHOWN_IN_MESSAGE
        if more > 0:
            names += f" et {more} autre(s)"
        return self.several.format(names=names)


@dataclass
class WordIndex:
    """Which entries (numbered from 0) hold each word: the entries holding every term typed."""

    postings: dict[str, set[int]] = field(default_factory=dict)
    vocabulary: list[str] = field(default_factory=list)
    """The words (not numbers), sorted: an unfinished word is a range of it."""

    def add(self, entry: int, texts: Iterable[Sequence[Position]]) -> None:
        """Entry ``entry`` holds every word of ``texts`` (each as ``positions`` read it)."""
        for key in {key for words in texts for position in words for key in position}:
            self.postings.setdefault(key, set()).add(entry)

    def seal(self) -> None:
        """Once every entry is added: the vocabulary for unfinished words."""
        self.vocabulary = sorted(k for k in self.postings if k[0] not in "#=")

    def holding(self, wanted: list[Term]) -> list[int]:
        """The entries holding every term, in entry order."""
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


def starts_with(words: Sequence[Position], wanted: list[Term]) -> bool:
    """Whether a text (its ``positions``) begins with the terms, in order."""
    return len(wanted) <= len(words) and all(
        matches(term, position) for term, position in zip(wanted, words, strict=False)
    )


S = TypeVar("S")
Ix = TypeVar("Ix")
_INDEXES: dict[tuple[Any, int], tuple[Any, Any]] = {}
KEPT = 8
"""Indexes kept per kind: the versions in force lately (a published version brings a new one)."""


def kept_index(source: S, build: Callable[[S], Ix]) -> Ix:
    """``build(source)``, once per list version: ``source`` never changes, and is kept with its
    index so that its id is not reused while the index is."""
    key = (build, id(source))
    kept = _INDEXES.get(key)
    if kept is not None and kept[0] is source:
        return kept[1]  # type: ignore[no-any-return]
    index = build(source)
    _INDEXES[key] = (source, index)
    mine = [k for k in _INDEXES if k[0] == build]
    for old in mine[: max(0, len(mine) - KEPT)]:
        del _INDEXES[old]
    return index
