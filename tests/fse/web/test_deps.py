"""Pages take what they need as typed dependencies (``fse/web/deps.py``) and typed accessors
(``fse/web/state.py``, ``reimbursement/state.py``), never as ``Session | Response`` to test nor
as untyped ``request.app.state`` attributes: a page that went back to either fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PAGES = ("fse/web", "prescriber", "pharmacy", "reimbursement")
ACCESSORS = {"fse/web/state.py"}
STATE = re.compile(r"request\.app\.state\.")
RESPONSE_CHECK = re.compile(r"isinstance\([^)]*Response\)")


def _sources() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
        for folder in PAGES
        for path in (ROOT / folder).rglob("*.py")
    }


def offenders(sources: dict[str, str]) -> list[str]:
    found = []
    for name, source in sorted(sources.items()):
        for number, line in enumerate(source.splitlines(), 1):
            if (STATE.search(line) and name not in ACCESSORS) or RESPONSE_CHECK.search(line):
                found.append(f"{name}:{number}")
    return found


def test_pages_read_the_app_through_typed_accessors_only() -> None:
    assert offenders(_sources()) == []


def test_the_guard_sees_both() -> None:
    samples = {
        "pharmacy/pages.py": "    x = request.app.state.fhir\n",
        "prescriber/pages.py": "if isinstance(session, Response):\n    return session\n",
        "fse/web/state.py": "    return request.app.state.fhir\n",
    }
    assert offenders(samples) == ["pharmacy/pages.py:1", "prescriber/pages.py:1"]
