"""Publish a new dated version of the reference tariffs (TNR) or of the medicines list.

The file has the format of the packaged ones (``reimbursement/data/``). It is read with the
core's own loaders (a malformed row is refused, naming it), compared with what is in force on its
``valid_from`` date, then written to the published reference data directory
(``FSE_REFERENCE_DATA_DIR``), which the servers reload within seconds: care on or after
``valid_from`` is priced on it, earlier care keeps the version it had.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from reimbursement.cnops import NotACnopsList, dumps, version_from_csv
from reimbursement.core.adjudication import Books
from reimbursement.core.medicines import medicine_list_version
from reimbursement.core.tariffs import tariff_version


class ImportRefused(ValueError):
    """The file cannot be published (the message says why and what to do)."""


@dataclass
class ImportPlan:
    kind: str
    """tnr or medicines: the sub-directory it goes to."""
    version_id: str
    valid_from: date
    rows: int
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    def report(self) -> list[str]:
        lines = [
            f"{self.kind} {self.version_id}: {self.rows} rows, in force from {self.valid_from} "
            f"(care on or after that date)",
            f"  {len(self.added)} new, {len(self.changed)} changed, {len(self.removed)} "
            f"no longer listed, {self.unchanged} unchanged",
        ]
        lines += [f"  + {line}" for line in self.added[:50]]
        lines += [f"  ~ {line}" for line in self.changed[:50]]
        lines += [f"  - {line}" for line in self.removed[:50]]
        return lines


def parse_version(raw: bytes, source: str) -> dict[str, Any]:
    """The version's JSON (``source`` names the file or request in the message)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as error:
        raise ImportRefused(f"{source}: not a readable JSON file ({error})") from None
    if not isinstance(data, dict) or not {"id", "valid_from"} <= data.keys():
        raise ImportRefused(f"{source}: a dated version needs at least 'id' and 'valid_from'")
    return data


def read_version(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ImportRefused(f"{path}: not a readable file ({error})") from None


def converted_csv(
    raw: bytes,
    source: str,
    valid_from: str | None,
    version_id: str | None,
    progress: Callable[[int, int], None] | None = None,
) -> bytes:
    """The CNOPS list's CSV, as published, as a version in the engine's format."""
    if not valid_from:
        raise ImportRefused(
            f"{source}: a CSV list carries no date: give --valid-from AAAA-MM-JJ (the first day "
            "of care priced on it; 2014-06-23 for the 2014 CNOPS list)"
        )
    try:
        day = date.fromisoformat(valid_from)
    except ValueError:
        raise ImportRefused(f"--valid-from {valid_from!r}: a date AAAA-MM-JJ") from None
    try:
        version = version_from_csv(raw, day, version_id or f"cnops-{day:%Y%m%d}", progress)
    except NotACnopsList as error:
        raise ImportRefused(f"{source}: {error}") from None
    return dumps(version)


def plan_import(
    raw: bytes,
    source: str,
    books: Books,
    progress: Callable[[int, int], None] | None = None,
) -> ImportPlan:
    """What publishing the version would change, compared with the one in force on its date."""
    data = parse_version(raw, source)
    if "medicines" in data:
        return _plan_medicines(data, books, progress)
    if "key_letters" in data or "flat_rates" in data:
        return _plan_tariffs(data, books)
    raise ImportRefused(f"{source}: neither a TNR version (key_letters) nor a medicines list")


def _plan_tariffs(data: dict[str, Any], books: Books) -> ImportPlan:
    try:
        version = tariff_version(data)
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise ImportRefused(f"TNR version: malformed ({error!r})") from None
    if any(v.id == version.id for v in books.tariffs.versions):
        raise ImportRefused(f"TNR version {version.id} is already published: choose a new id")
    plan = ImportPlan("tnr", version.id, version.valid_from, 0)
    for family in sorted(version.regime_families):
        for code, tariff in {**version.key_letters, **version.flat_rates}.items():
            plan.rows += 1
            before = books.tariffs.key_letter(
                code, family, version.valid_from
            ) or books.tariffs.flat_rate(code, family, version.valid_from)
            if before is None:
                plan.added.append(f"{code} ({family}) {tariff.value}")
            elif before.value != tariff.value:
                plan.changed.append(f"{code} ({family}) {before.value} -> {tariff.value}")
            else:
                plan.unchanged += 1
    return plan


def _plan_medicines(
    data: dict[str, Any], books: Books, progress: Callable[[int, int], None] | None
) -> ImportPlan:
    rows = data.get("medicines") or []
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or not str(row.get("ean", "")).isdigit():
            raise ImportRefused(f"medicines row {index + 1}: an EAN-13 (digits) is required")
        if progress and (index + 1) % 1000 == 0:
            progress(index + 1, len(rows))
    try:
        version = medicine_list_version(data)
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise ImportRefused(f"medicines list: malformed row ({error!r})") from None
    if any(v.id == version.id for v in books.medicines.versions):
        raise ImportRefused(f"medicines list {version.id} is already published: choose a new id")
    current = books.medicines.in_force(version.valid_from)
    plan = ImportPlan("medicines", version.id, version.valid_from, len(version.medicines))
    for ean, medicine in version.medicines.items():
        before = current.get(ean)
        if before is None:
            plan.added.append(
                f"{ean} {medicine.name} PPV {medicine.ppv or '-'} PBR {medicine.pbr or '-'}"
            )
        elif (before.ppv, before.pbr, before.reimbursable) != (
            medicine.ppv,
            medicine.pbr,
            medicine.reimbursable,
        ):
            plan.changed.append(
                f"{ean} {medicine.name}: PPV {before.ppv} -> {medicine.ppv}, "
                f"PBR {before.pbr} -> {medicine.pbr}"
                + ("" if medicine.reimbursable else ", no longer reimbursable")
            )
        else:
            plan.unchanged += 1
    plan.removed = [f"{ean} {m.name}" for ean, m in current.items() if ean not in version.medicines]
    if progress:
        progress(len(rows), len(rows))
    return plan


def publish(raw: bytes, plan: ImportPlan, directory: Path) -> Path:
    """Write the version where the servers load published versions from (named by its date and
    id, so versions sort by date)."""
    target = directory / plan.kind / f"{plan.valid_from.isoformat()}-{plan.version_id}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(raw)
    partial.replace(target)  # atomic: a server never reads half a file
    return target
