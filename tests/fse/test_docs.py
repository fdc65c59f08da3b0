"""The error catalogue in docs/errors.md is the one the code uses."""

from __future__ import annotations

import re
from pathlib import Path

from fse.errors import ERROR_DESCRIPTIONS, ErrorCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_every_error_code_is_documented_with_its_meaning() -> None:
    text = DOC.read_text(encoding="utf-8")
    for code in ErrorCode:
        assert f"| `{code.value}` | {code.name} |" in text, code
        assert ERROR_DESCRIPTIONS[code] in text, code


ROOT = DOC.parents[1]


def test_every_setting_is_in_the_configuration_table() -> None:
    """An operator reads docs/configuration.md, not fse/config.py: a setting added without its
    row is a setting no one can find."""
    from fse.config import Settings

    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`FSE_{name.upper()}`" not in text]
    assert missing == []


def test_every_command_is_in_the_command_reference() -> None:
    from fse.cli import build_parser

    text = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    parser = build_parser()
    commands = next(a for a in parser._actions if a.choices and a.dest == "command").choices
    assert [c for c in commands if f"`fse {c}" not in text] == []


def test_links_between_the_readme_and_the_docs_resolve() -> None:
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: {target}"
