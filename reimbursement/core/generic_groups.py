"""Generic groups: which products of the medicines list may replace one another at the counter.

The CNOPS list gives no group column, so a group is derived from what it does give, the DCI,
the strength and the form, read the same way for every row:

- **DCI**: accents, case and spacing ignored; a combination ("AMLODIPINE / ATORVASTATINE") is
  its components, each paired with its own strength, in alphabetical order. Salts stay as
  published ("LEVOTHYROXINE SODIQUE" is not "LEVOTHYROXINE").
- **Strength**: each value in one unit per dimension ("1 G" = "1000 MG", "100 µG" = "0.1 MG",
  "1 MUI" = "1000000 UI"), concentrations per millilitre ("2 MG/5ML" = "0.4 MG/ML"), "MG" and
  "mg" alike. A product without a strength (vaccines, "NA") is in no group: it has no
  substitute.
- **Form**: accents and case ignored, the source's misspelling "SUSPENTION" read as
  "SUSPENSION", scoring ("SECABLE", "QUADRISECABLE") ignored, and a tablet's coating
  ("PELLICULE", "ENROBE", "DRAGEIFIE") ignored: a film-coated tablet replaces a plain one, as in
  generic repertories. What changes how the medicine is released or taken stays a different
  form: LP, LM, gastro-résistant, effervescent, dispersible, orodispersible, à croquer; a
  capsule (gélule) is not a tablet.

Box for box, a substitute must also hold the same quantity (``pack_of``: 24 tablets, 100 ml),
or the prescription's boxes would not mean the same treatment. Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

COMBINED = " / "
_SCALE: dict[str, tuple[Decimal, str]] = {
    "G": (Decimal(1000), "MG"),
    "MG": (Decimal(1), "MG"),
    "µG": (Decimal("0.001"), "MG"),
    "UG": (Decimal("0.001"), "MG"),
    "MCG": (Decimal("0.001"), "MG"),
    "UI": (Decimal(1), "UI"),
    "MUI": (Decimal(1_000_000), "UI"),
    "L": (Decimal(1000), "ML"),
    "ML": (Decimal(1), "ML"),
}
"""A strength's unit, as a factor of the one it is compared in."""
_PER = re.compile(r"^(?P<unit>[^/]+)/(?P<amount>\d+(?:[.,]\d+)?)?\s*(?P<per>[A-Zµμ]+)$")
_SCORING = frozenset({"SECABLE", "QUADRISECABLE"})
_COATING = frozenset({"PELLICULE", "ENROBE", "DRAGEIFIE"})
_SPELLING = {"SUSPENTION": "SUSPENSION"}
_PACK = re.compile(r"^(?P<outer>\d+)\s+\S+\s+(?P<inner>\d+(?:\.\d+)?)\s*(?P<rest>.*)$")
_MEASURES = frozenset({"ML", "L", "G", "MG", "DOSE", "DOSES"})


def _folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    # NFKD reads the micro sign as Greek mu, which upper-cases to capital mu: one micro sign
    return " ".join(kept.upper().replace("\u039c", "µ").split())


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None
    return value if value.is_finite() and value > 0 else None


def _quantity(value: Decimal, unit: str) -> str | None:
    """``value unit`` in its dimension's unit ("1", "G" -> "1000MG"); None if unreadable."""
    unit = unit.replace(" ", "")
    per = _PER.match(unit)
    if per and unit not in _SCALE:
        base = _quantity(value, per["unit"])
        amount = _number(per["amount"] or "1")
        scale = _SCALE.get(per["per"])
        if base is None or amount is None or scale is None:
            return None
        number, dimension = _split(base)
        per_unit = (Decimal(number) / (amount * scale[0])).normalize()
        return f"{format(per_unit, 'f')}{dimension}/{scale[1]}"
    factor, dimension = _SCALE.get(unit, (Decimal(1), unit))
    if not dimension or dimension == "NA":
        return None
    return f"{format((value * factor).normalize(), 'f')}{dimension}"


def _split(quantity: str) -> tuple[str, str]:
    match = re.match(r"^([\d.]+)(.*)$", quantity)
    assert match is not None
    return match[1], match[2]


def strength_parts(strength: str) -> list[tuple[Decimal, str]] | None:
    """A strength as published by the engine's format ("500 MG / 150 MG", "2 MG/5ML"): each
    component's value and unit; None when a component has no readable value."""
    parts = []
    for component in _folded(strength).split(COMBINED):
        match = re.match(r"^(\d+(?:[.,]\d+)?)\s*(.*)$", component.strip())
        value = _number(match[1]) if match else None
        if match is None or value is None or not match[2]:
            return None
        parts.append((value, match[2]))
    return parts


def form_of(form: str) -> str:
    """The form as groups compare it ("COMPRIME PELLICULE SECABLE" -> "COMPRIME")."""
    words = [_SPELLING.get(w, w) for w in _folded(form).split() if w not in _SCORING]
    if words[:1] == ["COMPRIME"]:
        words = ["COMPRIME"] + [w for w in words[1:] if w not in _COATING]
    return " ".join(words)


def group_of(dci: str, strength: str, form: str) -> str | None:
    """The generic group's key, e.g. "ACICLOVIR 200MG | COMPRIME"; None when the product has
    no readable strength for each of its DCIs (it then has no substitute)."""
    components = [c.strip() for c in _folded(dci).split(COMBINED.strip())]
    parts = strength_parts(strength) if strength.strip() else None
    if not parts or len(parts) != len(components) or not all(components):
        return None
    paired = []
    for name, (value, unit) in zip(components, parts, strict=True):
        quantity = _quantity(value, unit)
        if quantity is None:
            return None
        paired.append(f"{name} {quantity}")
    return f"{' + '.join(sorted(paired))} | {form_of(form)}"


def pack_of(presentation: str) -> str:
    """What one box holds ("1 BOITE 24 COMPRIME" -> "24", "1 FLACON 100 ML" -> "100 ML",
    "3 CARTOUCHE 3 ML" -> "9 ML"); the presentation itself, folded, when it reads otherwise."""
    folded = _folded(presentation)
    match = _PACK.match(folded)
    if match is None:
        return folded
    total = (Decimal(match["outer"]) * Decimal(match["inner"])).normalize()
    unit = match["rest"].split()[0] if match["rest"] else ""
    count = format(total, "f")
    return f"{count} {unit}" if unit in _MEASURES else count
