"""The error catalogue in docs/errors.md is the one the code uses."""

from __future__ import annotations

from pathlib import Path

from fse.errors import ERROR_DESCRIPTIONS, ErrorCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_every_error_code_is_documented_with_its_meaning() -> None:
    text = DOC.read_text(encoding="utf-8")
    for code in ErrorCode:
        assert f"| `{code.value}` | {code.name} |" in text, code
        assert ERROR_DESCRIPTIONS[code] in text, code
