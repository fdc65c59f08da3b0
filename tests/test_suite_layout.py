"""The browser tests never share a process with the asyncio tests. Playwright's sync API leaves
its event loop set as the thread's running loop between calls: pytest-asyncio then refuses to
run a test after it ("Runner.run() cannot be called from a running event loop"), and clearing
that lets pytest-asyncio close Playwright's loop under the next browser test. With work
stealing, an asyncio test can land after a browser test on the same worker (a fresh-clone CI
run of 2026-12-04 did), so `make test` runs the two trees as two pytest runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _recipe(target: str) -> list[str]:
    """The command lines of a Makefile target."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_test_runs_the_browser_tests_in_a_pytest_run_of_their_own() -> None:
    runs = [line.split() for line in _recipe("test") if "pytest" in line]
    trees = [[word for word in run if word in ("tests", "e2e")] for run in runs]
    assert sorted(map(tuple, trees)) == [("e2e",), ("tests",)], runs
