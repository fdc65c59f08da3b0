"""Load the dated reference data files (TNR, medicines, NGAP acts, rates, rights, anomaly rules)
into the core's books: the versions packaged in ``reimbursement/data/``, then the TNR and medicines
versions published since (``fse tariffs import`` into ``FSE_REFERENCE_DATA_DIR``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from fhir_profiles.identifiers import EAN13_RE, accept_published_ean13, ean13_key_ok
from reimbursement.core.adjudication import Books
from reimbursement.core.anomalies import AnomalyRules
from reimbursement.core.biology import BiologyNomenclature, biology_version
from reimbursement.core.ceilings import FeeCeilings
from reimbursement.core.medicines import MedicineList, medicine_list_version
from reimbursement.core.ngap_acts import ActList, ActListVersion, act_list_version
from reimbursement.core.rates import RateBook
from reimbursement.core.rights import RightsRules
from reimbursement.core.tariffs import TariffBook, tariff_version

DATA = Path(__file__).parent / "data"


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"reference data file {path}: {error}") from error


def act_list(meta_path: Path) -> ActListVersion:
    """A dated NGAP act list: its JSON names the CSV shipped verbatim beside it and its SHA-256
    (a changed file is a new version, never an edit)."""
    meta = _json(meta_path)
    path = meta_path.parent / meta["file"]
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"reference data file {path}: {error}") from error
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise ValueError(f"reference data file {path}: SHA-256 differs from {meta_path.name}")
    rows = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    return act_list_version(meta, rows)


def _versions(pattern: str, directory: Path, published: Path | None) -> list[Path]:
    found = sorted(directory.glob(pattern))
    return found + (sorted(published.glob(pattern)) if published is not None else [])


def load_books(directory: Path = DATA, published: Path | None = None) -> Books:
    """The books, and the listed codes whose EAN-13 check digit is wrong made acceptable to the
    validator (``accept_published_ean13``): a list is taken as published.

    Loaded once per directory and published state: the full medicines list takes tenths of a
    second to read and longer to index (``medicine_search.index_of`` keeps one index per list
    version it is given), and the books are never changed once loaded."""
    state = published_state(published) if published is not None else ()
    # an empty published directory is no published directory: one load for every app of a
    # process whatever its (empty) directory, as every test platform has its own
    books, wrong_keys = _load_books(directory, published if state else None, state)
    accept_published_ean13(wrong_keys)
    return books


@lru_cache(maxsize=8)
def _load_books(
    directory: Path, published: Path | None, _state: tuple[tuple[str, float], ...]
) -> tuple[Books, frozenset[str]]:
    """The books, and their listed codes whose EAN-13 check digit is wrong."""
    books = Books(
        tariffs=TariffBook(
            [tariff_version(_json(p)) for p in _versions("tnr/*.json", directory, published)]
        ),
        medicines=MedicineList(
            [
                medicine_list_version(_json(p))
                for p in _versions("medicines/*.json", directory, published)
            ]
        ),
        biology=BiologyNomenclature(
            [biology_version(_json(p)) for p in sorted(directory.glob("nabm/*.json"))]
        ),
        acts=ActList([act_list(p) for p in sorted(directory.glob("ngap/*.json"))]),
        rates=RateBook(_json(directory / "rates.json")),
        rights=RightsRules(_json(directory / "rights.json")),
        anomalies=AnomalyRules(_json(directory / "anomaly-rules.json")),
        ceilings=FeeCeilings.from_data(_json(directory / "fee-ceilings.json")),
    )
    wrong_keys = frozenset(
        ean
        for version in books.medicines.versions
        for ean in version.medicines
        if EAN13_RE.match(ean) and not ean13_key_ok(ean)
    )
    return books, wrong_keys


def published_state(published: Path) -> tuple[tuple[str, float], ...]:
    """What is published now (file names and times), to notice a new version cheaply."""
    return tuple(
        (str(p), p.stat().st_mtime) for p in sorted(published.glob("*/*.json")) if p.is_file()
    )


@cache
def default_books() -> Books:
    return load_books()
