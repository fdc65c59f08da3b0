"""The reimbursable medicines list, keyed on EAN-13 (prices differ per presentation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from reimbursement.core.dated import Citation, citation_of, in_force, newest_first, parse_date
from reimbursement.core.generic_groups import group_of, pack_of
from reimbursement.core.money import amount


@dataclass(frozen=True)
class Medicine:
    ean: str
    name: str
    dci: str
    form: str
    strength: str
    presentation: str
    ppv: Decimal | None
    """Public retail price; None where the list gives none (unknown, never 0)."""
    pbr: Decimal | None
    """Reimbursement base: the price of the generic nearest to the princeps; None where the
    list gives none, and then nothing is settled on it."""
    ph: Decimal | None
    """Hospital price."""
    pbr_ph: Decimal | None
    generic: bool
    reimbursable: bool
    version: str
    rate: Decimal | None = None
    """The list's own rate for this product, when it has one (else the regime's)."""
    group: str | None = None
    """Its generic group (``generic_groups.group_of``); None: no substitute."""
    pack: str = ""
    """What one box holds (``generic_groups.pack_of``)."""
    product: str = ""
    """The code of the product this presentation is: the list may publish one pack under two
    codes (old and new numbering), which are then one product."""

    @property
    def kind(self) -> str:
        """What the list says the product is (its P/G column), as every screen names it: a
        princeps stays « princeps » wherever it appears, in a substitution list too."""
        return "générique" if self.generic else "princeps"

    def same_product_as(self, other: Medicine) -> bool:
        """The same pack, maybe under its other code: giving it is no substitution."""
        return (self.product or self.ean) == (other.product or other.ean)

    def substitutes_for(self, other: Medicine) -> bool:
        """A product may replace the prescribed one only from the same generic group (DCI,
        strength and form) and with the same quantity in the box."""
        return self.group is not None and (self.group, self.pack) == (other.group, other.pack)


@dataclass(frozen=True)
class MedicineListVersion:
    id: str
    valid_from: date
    valid_to: date | None
    medicines: Mapping[str, Medicine]
    citation: Citation = field(default_factory=Citation)


def medicine_list_version(data: Mapping[str, Any]) -> MedicineListVersion:
    vid = data["id"]
    valid_from = parse_date(data["valid_from"])
    if valid_from is None:
        raise ValueError(f"medicines list {vid} has no valid_from")
    medicines = {}
    for row in data["medicines"]:
        ean = str(row["ean"])
        if ean in medicines:
            raise ValueError(f"medicines list {vid}: EAN {ean} listed twice")
        dci, form, strength = row["dci"], row["form"], row["strength"]
        medicines[ean] = Medicine(
            ean=ean,
            name=row["name"],
            dci=dci,
            form=form,
            strength=strength,
            presentation=row["presentation"],
            ppv=_price(row.get("ppv")),
            pbr=_price(row.get("pbr")),
            ph=_price(row.get("ph", row.get("ppv"))),
            pbr_ph=_price(row.get("pbr_ph", row.get("pbr"))),
            generic=row["type"] == "G",
            reimbursable=bool(row.get("reimbursable", True)),
            version=vid,
            rate=amount(row["rate"]) if row.get("rate") is not None else None,
            group=row["group"] if "group" in row else group_of(dci, strength, form),
            pack=pack_of(row["presentation"]),
            product=str(row.get("product") or ean),
        )
    return MedicineListVersion(
        vid,
        valid_from,
        parse_date(data.get("valid_to")),
        medicines,
        citation_of(data),
    )


def _price(value: Any) -> Decimal | None:
    """A price of the list: None where it gives none (an empty field is unknown, never 0)."""
    return None if value is None or value == "" else amount(value)


class MedicineList:
    def __init__(self, versions: Sequence[MedicineListVersion]) -> None:
        self.versions = newest_first(versions)

    def get(self, ean: str, on: date) -> Medicine | None:
        for version in self.versions:
            if in_force(version, on):
                return version.medicines.get(ean)
        return None

    def in_force(self, on: date) -> Mapping[str, Medicine]:
        for version in self.versions:
            if in_force(version, on):
                return version.medicines
        return {}
