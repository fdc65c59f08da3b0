"""Finding an NGAP act as a doctor types its code ("J329", "j329") or words of its label
("appendicectomie", "appendic"), so that the act named on the sheet is the one they mean.

Three tiers, in order (``reimbursement.word_search``): the exact code or the exact label, then
the codes that start with what was typed and the labels that start with its words, then the
acts whose label or section title holds every word typed (accents and case ignored, whole words,
the last one possibly unfinished once it has three letters). Within a tier, the nomenclature's
order. The first tier that finds something decides: one act is the choice, several must be told
apart (``T100``, printed twice in the source for two acts, is told apart by its label). Pure.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field

from fse.web.formats import number_fr
from reimbursement.core.ngap_acts import Act, ActListVersion
from reimbursement.word_search import (
    QUERY_MAX,
    Found,
    Position,
    WordIndex,
    fold,
    kept_index,
    positions,
    starts_with,
    terms,
)

NO_MATCH = (
    "Aucun acte de la liste NGAP ne correspond : saisissez son code (ex. J329) ou son libellé."
)
SEVERAL = "Plusieurs actes correspondent ({names}) : précisez."
NO_LABEL = "(libellé absent de la source)"
CODE_PREFIX = re.compile(r"[A-Z][0-9]{0,3}")
"""The start of an act code as typed (upper-cased): "J", "J3", "J32", "J329"."""


@dataclass(frozen=True)
class ActEntry:
    act: Act
    label: str
    """The code and the label, as lists and messages name the act."""
    words: tuple[Position, ...]

    @property
    def value(self) -> str:
        """What a field takes to name this act: its code, or its label when the code is
        printed for another act too."""
        return self.act.label if self.act.shared_code and self.act.label else self.act.code


def named(act: Act) -> str:
    return f"{act.code} — {act.label or NO_LABEL}"


def unsound_why(act: Act) -> str:
    """Why the list's coefficient is neither a default nor a limit ("" when it is one)."""
    if act.sound:
        return ""
    if act.shared_code:
        return f"le code {act.code} désigne plusieurs actes dans la liste"
    if act.coefficient_raw:
        return f"la liste imprime « {act.coefficient_raw} », signalé douteux dans la source"
    return "la liste n'en donne pas"


def coefficient_said(act: Act) -> str:
    """What the list says of the act's coefficient, and whether the form takes it."""
    if act.sound:
        return f"coefficient {number_fr(act.coefficient)}"
    return f"coefficient à saisir ({unsound_why(act)})"


def said(act: Act) -> str:
    """The line under the field naming the act the form takes."""
    parts = [
        f"Acte retenu : {named(act)}",
        coefficient_said(act),
        f"chapitre {act.chapter_letter} : {act.chapter_label}",
    ]
    if act.key_letter_in_source:
        parts.append(f"lettre clé imprimée dans la source : {act.key_letter_in_source}")
    return " · ".join(parts)


@dataclass
class ActIndex:
    """The acts of one list version, indexed by code, label and word."""

    entries: list[ActEntry] = field(default_factory=list)
    by_code: dict[str, list[int]] = field(default_factory=dict)
    codes: list[tuple[str, int]] = field(default_factory=list)
    """(code, entry), sorted: the codes starting with a text are a range of it."""
    by_label: dict[str, list[int]] = field(default_factory=dict)
    words: WordIndex = field(default_factory=WordIndex)

    @classmethod
    def build(cls, version: ActListVersion) -> ActIndex:
        index = cls()
        for i, act in enumerate(version.acts):
            label = positions(act.label)
            index.entries.append(ActEntry(act, named(act), tuple(label)))
            index.by_code.setdefault(act.code.upper(), []).append(i)
            if act.label:
                index.by_label.setdefault(fold(act.label), []).append(i)
            index.words.add(i, (label, positions(act.section_label)))
        index.codes = sorted((act.code.upper(), i) for i, act in enumerate(version.acts))
        index.words.seal()
        return index

    def search(self, text: str) -> Found[ActEntry]:
        text = text.strip()[:QUERY_MAX]
        folded = fold(text)
        if not folded:
            return Found(([], [], []), NO_MATCH, SEVERAL)
        code = text.upper()
        exact = self.by_code.get(code) or self.by_label.get(folded, [])
        wanted = terms(text)
        found = self.words.holding(wanted)
        entries = self.entries
        starting = sorted(
            {*self._codes_from(code), *(i for i in found if starts_with(entries[i].words, wanted))}
        )
        return Found(
            (
                [entries[i] for i in exact],
                [entries[i] for i in starting],
                [entries[i] for i in found],
            ),
            NO_MATCH,
            SEVERAL,
        )

    def _codes_from(self, prefix: str) -> list[int]:
        """The acts whose code starts with ``prefix`` (a letter, maybe digits: "J", "J32")."""
        if not CODE_PREFIX.fullmatch(prefix):
            return []
        out = []
        for code, i in self.codes[bisect_left(self.codes, (prefix, -1)) :]:
            if not code.startswith(prefix):
                break
            out.append(i)
        return out


def act_index(version: ActListVersion) -> ActIndex:
    """The index of a list version, built the first time it is asked for."""
    return kept_index(version, ActIndex.build)


def resolve_act(text: str, version: ActListVersion | None) -> tuple[Act | None, str]:
    """The one act ``text`` names, or why not: none, or which ones to choose between."""
    if version is None:
        return None, "Aucune liste des actes NGAP n'est en vigueur aujourd'hui."
    found = act_index(version).search(text)
    choice = found.choice
    return (choice.act, "") if choice is not None else (None, found.why)
