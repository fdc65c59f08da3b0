"""The NGAP act list as shipped: every row as published, its flags, and which coefficients the
platform may use as a default and a limit (the data set's README, shared/data/ngap)."""

from __future__ import annotations

import json
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from reimbursement.core.ngap_acts import Act, ActListVersion
from reimbursement.reference_data import DATA, act_list, default_books

TODAY = date(2026, 12, 3)
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ngap" / "ngap_maroc.csv"


def version() -> ActListVersion:
    found = default_books().acts.in_force(TODAY)
    assert found is not None
    return found


def one(code: str) -> Act:
    (act,) = version().by_code[code]
    return act


def values(act: Act) -> list[Decimal | None]:
    return [act.coefficient, act.coefficient_2, act.coefficient_3, act.coefficient_4]


def test_every_row_is_loaded_as_published() -> None:
    acts = version().acts
    assert len(acts) == 2317
    assert len({a.code for a in acts}) == 2316
    assert acts[0].code == "A100" and acts[-1].code == "Z702"  # the printed order
    assert values(one("A100")) == [10, None, None, None]
    assert values(one("A115")) == [80, 30, None, None]
    assert values(one("J203")) == [82, None, None, None]
    assert values(one("J318")) == [200, 110, None, None]
    assert one("S113").coefficient == Decimal("0.75") and one("S113").coefficient_raw == "0,75"
    m232 = one("M232")
    assert m232.coefficient == 40 and m232.coefficient_raw == "40SF"
    assert m232.key_letter_in_source == "SF"
    assert values(one("Y100")) == [150, 300, 45, None]
    j329 = one("J329")
    assert j329.label == "Appendicectomie à ciel ouvert"
    assert (j329.chapter_letter, j329.chapter_label) == ("J", "Actes portant sur l'abdomen")
    assert j329.section_code == "J300-J335"


def test_flagged_rows_give_no_default_and_no_limit() -> None:
    d542 = one("D542")
    assert d542.source_issues == {"coefficient_format_anomaly", "coefficient_possibly_in_label"}
    assert d542.coefficient is None and d542.coefficient_raw == "00 30"
    m212 = one("M212")
    assert m212.source_issues == {"coefficient_is_text"} and m212.coefficient_raw == "C ou CS"
    assert not d542.sound and not m212.sound and d542.limit is None and m212.limit is None
    assert not one("A304").sound  # "cm² 8": the coefficient may sit in the label
    assert not one("H414").sound  # "150 -70"
    assert one("J203").sound and one("J203").limit == 82
    # Label defects leave the coefficient usable.
    assert one("C114").source_issues == {"label_includes_adjacent_text"} and one("C114").sound
    assert one("D105").source_issues == {"label_missing"} and one("D105").sound
    unsound = [a.code for a in version().acts if not a.sound]
    assert len(unsound) == 25 + 2 + 1 + 2  # missing, D542 and H414, M212, the two T100


def test_the_code_printed_twice_is_kept_twice_and_limits_nothing() -> None:
    first, second = version().by_code["T100"]
    assert first.coefficient == 4 and first.source_issues == frozenset()
    assert second.coefficient == 22
    assert second.source_issues == {"code_reused_for_another_act"}
    assert second.label.startswith("Bilan radiologique complet du coude")
    assert first.shared_code and second.shared_code
    assert first.limit is None and second.limit is None  # neither is picked silently
    acts = default_books().acts
    assert acts.limit("T100", TODAY) is None
    assert acts.limit("J203", TODAY) == 82
    assert acts.limit("D542", TODAY) is None and acts.limit("Q999", TODAY) is None
    assert acts.limit("J203", date(2025, 12, 31)) is None  # before the list's valid_from


def test_the_csv_is_shipped_verbatim_and_checked(tmp_path: Path) -> None:
    shipped = DATA / "ngap" / "ngap_maroc.csv"
    if SHARED.exists():
        assert shipped.read_bytes() == SHARED.read_bytes()
    assert b"\r\n" in shipped.read_bytes()[:2000]  # CRLF kept, as published
    meta = json.loads((DATA / "ngap" / "2026-01-01-ngap-maroc.json").read_text("utf-8"))
    assert meta["valid_from"] == "2026-01-01" and meta["file"] == "ngap_maroc.csv"
    shutil.copy(DATA / "ngap" / "2026-01-01-ngap-maroc.json", tmp_path / "v.json")
    (tmp_path / "ngap_maroc.csv").write_bytes(shipped.read_bytes().replace(b"A100,", b"A199,", 1))
    with pytest.raises(ValueError, match="SHA-256"):
        act_list(tmp_path / "v.json")
