"""Read the CNOPS "Référentiel des médicaments" CSV as it is published and turn it into a dated
medicines list in the engine's format (``reimbursement/data/medicines/*.json``).

``fse tariffs import FILE.csv --valid-from DATE`` publishes a list this way, and the packaged
list (``2014-06-23-cnops-2014.json``) is this module's output over the packaged CSV
(``reimbursement/data/sources/``); a test keeps the two equal. What the data says is kept: an
empty price stays unknown (never 0), a rate of 0 means not reimbursable, codes whose EAN-13 check
digit is wrong stay as published, and the same pack under two codes becomes one product with two
codes (``product`` names the first code).

The list is licensed under the ODbL: whatever is made from it carries ``ATTRIBUTION``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from reimbursement.core.generic_groups import COMBINED

COLUMNS = (
    "CODE",
    "NOM",
    "DCI1",
    "DOSAGE1",
    "UNITE_DOSAGE1",
    "FORME",
    "PRESENTATION",
    "PPV",
    "PH",
    "PRIX_BR",
    "PRINCEPS_GENERIQUE",
    "TAUX_REMBOURSEMENT",
)
ATTRIBUTION = (
    "Contient des données CNOPS — Référentiel des médicaments (data.gov.ma), sous licence ODbL"
)
LICENCE = "Open Data Commons Open Database License (ODbL) 1.0"
LICENCE_URL = "https://opendatacommons.org/licenses/odbl/1-0/"
SOURCE_URL = "https://www.data.gov.ma/data/fr/dataset/referentiel-des-medicaments"


class NotACnopsList(ValueError):
    """The file is not the published CNOPS list (the message names the row and what to do)."""


def _price(value: str, where: str) -> str | None:
    text = value.strip()
    if not text:
        return None  # not given in the list: unknown, never 0
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise NotACnopsList(f"{where}: price {value!r} is not a number") from None
    if not price.is_finite() or price < 0:
        raise NotACnopsList(f"{where}: price {value!r} is not a price")
    return f"{price:.2f}"


def strength(dosage: str, unit: str) -> str:
    """ "500 / 150" and "MG / MG" -> "500 MG / 150 MG"; "" when the list gives no strength."""
    values = [v.strip() for v in dosage.split("/")] if dosage.strip() else []
    units = [u.strip() for u in unit.split(COMBINED)]
    if len(units) == 1 and len(values) > 1:
        units *= len(values)
    if not values or len(units) != len(values) or any(u in ("", "NA") for u in units):
        return ""
    return COMBINED.join(f"{v} {u}" for v, u in zip(values, units, strict=True))


def _row(fields: dict[str, str], line: int) -> dict[str, Any]:
    where = f"row {line}"
    code = fields["CODE"].strip()
    if len(code) != 13 or not code.isascii() or not code.isdigit():
        raise NotACnopsList(f"{where}: CODE {code!r} is not a 13-digit EAN-13")
    kind = fields["PRINCEPS_GENERIQUE"].strip()
    if kind not in ("P", "G"):
        raise NotACnopsList(f"{where}: PRINCEPS_GENERIQUE {kind!r} is neither P nor G")
    rate = fields["TAUX_REMBOURSEMENT"].strip()
    if not rate.isascii() or not rate.isdigit() or int(rate) > 100:
        raise NotACnopsList(f"{where}: TAUX_REMBOURSEMENT {rate!r} is not a percentage")
    reimbursable = int(rate) > 0
    return {
        "ean": code,
        "name": fields["NOM"].strip(),
        "dci": fields["DCI1"].strip(),
        "form": fields["FORME"].strip(),
        "strength": strength(fields["DOSAGE1"], fields["UNITE_DOSAGE1"]),
        "presentation": fields["PRESENTATION"].strip(),
        "ppv": _price(fields["PPV"], f"{where} PPV"),
        "ph": _price(fields["PH"], f"{where} PH"),
        "pbr": _price(fields["PRIX_BR"], f"{where} PRIX_BR"),
        "pbr_ph": None,
        "type": kind,
        "reimbursable": reimbursable,
        "rate": f"{Decimal(rate) / 100:.2f}" if reimbursable else None,
    }


def version_from_csv(
    raw: bytes,
    valid_from: date,
    version_id: str,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The list as a dated version in the engine's format."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotACnopsList("the file is not UTF-8: convert it (e.g. iconv -f latin1)") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise NotACnopsList(f"the header is not the CNOPS list's 12 columns ({', '.join(COLUMNS)})")
    cells = list(reader)
    medicines: list[dict[str, Any]] = []
    first_code: dict[tuple[Any, ...], str] = {}
    for index, cell in enumerate(cells):
        line = index + 2
        if len(cell) != len(COLUMNS):
            raise NotACnopsList(f"row {line}: {len(cell)} fields, the list has {len(COLUMNS)}")
        row = _row(dict(zip(COLUMNS, cell, strict=True)), line)
        same = tuple(v for k, v in row.items() if k != "ean")
        product = first_code.setdefault(same, row["ean"])
        if product != row["ean"]:
            row["product"] = product  # the same pack under its other code
        medicines.append(row)
        if progress and (index + 1) % 1000 == 0:
            progress(index + 1, len(cells))
    codes = [m["ean"] for m in medicines]
    if len(set(codes)) != len(codes):
        twice = sorted({c for c in codes if codes.count(c) > 1})
        raise NotACnopsList(f"codes listed twice: {', '.join(twice[:10])}")
    return {
        "id": version_id,
        "title": "Référentiel des médicaments CNOPS (prix 2014)",
        "source_url": SOURCE_URL,
        "licence": LICENCE,
        "licence_url": LICENCE_URL,
        "attribution": ATTRIBUTION,
        "valid_from": valid_from.isoformat(),
        "valid_to": None,
        "medicines": medicines,
    }


def dumps(version: dict[str, Any]) -> bytes:
    """The version as the packaged files are written: one product per line (diffs stay
    readable when a new list is published)."""
    head = {k: v for k, v in version.items() if k != "medicines"}
    lines = [json.dumps(m, ensure_ascii=False) for m in version["medicines"]]
    body = json.dumps(head, ensure_ascii=False, indent=1)[:-2]
    return (body + ',\n "medicines": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n").encode()
