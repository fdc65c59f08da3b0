"""The NGAP act list (codes, labels, coefficients, chapters), in dated versions.

The list names acts; it does not price them. A line is still priced by the key letter the doctor
typed times its coefficient against the TNR (``tariffs.py``): the source gives no key letter for
almost every act, and its chapter letter is a code prefix, not a key letter. What the list adds
is the act's code and label on the sheet, its coefficient as the form's default, and that
coefficient as the most a line naming the act may bill (R10), where the value is sound.

Sound means: a coefficient is published, the row carries none of ``UNSOUND`` flags, and the
code names one act only (the source prints ``T100`` twice for two different acts: neither row
gives a limit, rather than one picked silently). ``label_missing`` and
``label_includes_adjacent_text`` touch the label only and leave the coefficient usable.
``coefficient_2`` .. ``coefficient_4`` are kept as published; their meaning is unconfirmed, so
nothing uses them. Pure: the rows come in as read from the CSV file (``reference_data.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from reimbursement.core.dated import Citation, citation_of, newest_first, parse_date, version_on

UNSOUND = frozenset(
    {
        "coefficient_missing",
        "coefficient_format_anomaly",
        "coefficient_is_text",
        "coefficient_possibly_in_label",
        "code_reused_for_another_act",
    }
)
"""``source_issues`` flags that make a row's coefficient unusable (as a default or a limit)."""

COLUMNS = (
    "code",
    "label",
    "coefficient",
    "coefficient_2",
    "coefficient_3",
    "coefficient_4",
    "coefficient_raw",
    "key_letter_in_source",
    "chapter_letter",
    "chapter_code",
    "chapter_label",
    "section_code",
    "section_label",
    "source_issues",
)


@dataclass(frozen=True)
class Act:
    """One row of the list, as published (labels are not corrected)."""

    code: str
    label: str
    coefficient: Decimal | None
    coefficient_2: Decimal | None
    coefficient_3: Decimal | None
    coefficient_4: Decimal | None
    coefficient_raw: str
    key_letter_in_source: str
    """Only printed for 14 rows (``SF``, ``KE``, ``C ou CS``): empty says nothing."""
    chapter_letter: str
    """A code prefix, not a key letter."""
    chapter_code: str
    chapter_label: str
    section_code: str
    section_label: str
    source_issues: frozenset[str]
    shared_code: bool = False
    """Another row of the list has the same code."""

    @property
    def sound(self) -> bool:
        """Its coefficient can default the cotation and limit it (R10)."""
        return (
            self.coefficient is not None
            and not (self.source_issues & UNSOUND)
            and not self.shared_code
        )

    @property
    def limit(self) -> Decimal | None:
        return self.coefficient if self.sound else None


@dataclass(frozen=True)
class ActListVersion:
    id: str
    valid_from: date
    valid_to: date | None
    acts: tuple[Act, ...]
    """Every row, in the source's order (the printed nomenclature's)."""
    by_code: Mapping[str, tuple[Act, ...]]
    citation: Citation = field(default_factory=Citation)


def _number(value: str, code: str, column: str) -> Decimal | None:
    if not value.strip():
        return None
    try:
        found = Decimal(value.strip())
    except InvalidOperation as error:
        raise ValueError(f"NGAP act {code}: {column} {value!r} is not a number") from error
    if not found.is_finite() or found < 0:
        raise ValueError(f"NGAP act {code}: {column} {value!r} is not a number")
    return found


def _act(row: Mapping[str, str], shared: bool) -> Act:
    code = row["code"]
    return Act(
        code=code,
        label=row["label"],
        coefficient=_number(row["coefficient"], code, "coefficient"),
        coefficient_2=_number(row["coefficient_2"], code, "coefficient_2"),
        coefficient_3=_number(row["coefficient_3"], code, "coefficient_3"),
        coefficient_4=_number(row["coefficient_4"], code, "coefficient_4"),
        coefficient_raw=row["coefficient_raw"],
        key_letter_in_source=row["key_letter_in_source"],
        chapter_letter=row["chapter_letter"],
        chapter_code=row["chapter_code"],
        chapter_label=row["chapter_label"],
        section_code=row["section_code"],
        section_label=row["section_label"],
        source_issues=frozenset(f for f in row["source_issues"].split(";") if f),
        shared_code=shared,
    )


def act_list_version(meta: Mapping[str, Any], rows: Iterable[Mapping[str, str]]) -> ActListVersion:
    """``meta``: the version's id and dates (its JSON file); ``rows``: the CSV rows."""
    read = list(rows)
    for number, row in enumerate(read, start=2):
        missing = [c for c in COLUMNS if row.get(c) is None]
        if missing:
            raise ValueError(f"{meta['id']}: line {number} lacks {', '.join(missing)}")
    valid_from = parse_date(meta.get("valid_from"))
    if valid_from is None:
        raise ValueError(f"{meta['id']}: valid_from is required")
    counts = Counter(row["code"] for row in read)
    acts = tuple(_act(row, counts[row["code"]] > 1) for row in read)
    by_code: dict[str, tuple[Act, ...]] = {}
    for act in acts:
        by_code[act.code] = (*by_code.get(act.code, ()), act)
    return ActListVersion(
        meta["id"],
        valid_from,
        parse_date(meta.get("valid_to")),
        acts,
        by_code,
        citation_of(meta),
    )


class ActList:
    def __init__(self, versions: Sequence[ActListVersion] = ()) -> None:
        self.versions = newest_first(versions)

    def in_force(self, on: date) -> ActListVersion | None:
        return version_on(self.versions, on)

    def limit(self, code: str, on: date) -> Decimal | None:
        """The most a line naming act ``code`` may have as coefficient on ``on``: None when
        the act is unknown, its coefficient unsound, or its code names several acts."""
        version = self.in_force(on)
        found = version.by_code.get(code, ()) if version else ()
        return found[0].limit if len(found) == 1 else None
