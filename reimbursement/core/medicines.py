"""The reimbursable medicines list, keyed on EAN-13 (prices differ per presentation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from reimbursement.core.dated import in_force, newest_first, parse_date
from reimbursement.core.money import amount


@dataclass(frozen=True)
class Medicine:
    ean: str
    name: str
    dci: str
    form: str
    strength: str
    presentation: str
    ppv: Decimal
    """Public retail price."""
    pbr: Decimal
    """Reimbursement base: the price of the generic nearest to the princeps."""
    ph: Decimal
    pbr_ph: Decimal
    generic: bool
    reimbursable: bool
    version: str
    rate: Decimal | None = None
    """The list's own rate for this product, when it has one (else the regime's)."""

    @property
    def kind(self) -> str:
        """What the list says the product is (its P/G column), as every screen names it: a
        princeps stays « princeps » wherever it appears, in a substitution list too."""
        return "générique" if self.generic else "princeps"

    def same_product_as(self, other: Medicine) -> bool:
        """A generic may replace the prescribed product only with the same DCI, form and
        strength."""
        return (self.dci, self.form, self.strength) == (other.dci, other.form, other.strength)


@dataclass(frozen=True)
class MedicineListVersion:
    id: str
    valid_from: date
    valid_to: date | None
    medicines: Mapping[str, Medicine]


def medicine_list_version(data: Mapping[str, Any]) -> MedicineListVersion:
    vid = data["id"]
    valid_from = parse_date(data["valid_from"])
    if valid_from is None:
        raise ValueError(f"medicines list {vid} has no valid_from")
    medicines = {}
    for row in data["medicines"]:
        ean = str(row["ean"])
        medicines[ean] = Medicine(
            ean=ean,
            name=row["name"],
            dci=row["dci"],
            form=row["form"],
            strength=row["strength"],
            presentation=row["presentation"],
            ppv=amount(row["ppv"]),
            pbr=amount(row["pbr"]),
            ph=amount(row.get("ph", row["ppv"])),
            pbr_ph=amount(row.get("pbr_ph", row["pbr"])),
            generic=row["type"] == "G",
            reimbursable=bool(row.get("reimbursable", True)),
            version=vid,
            rate=amount(row["rate"]) if row.get("rate") is not None else None,
        )
    return MedicineListVersion(vid, valid_from, parse_date(data.get("valid_to")), medicines)


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
