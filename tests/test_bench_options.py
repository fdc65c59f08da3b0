"""The benchmark's options that refuse to run: a phase that needs PostgreSQL (the payment batch,
the API's phases, bytes per table) is not run on SQLite as if it could be."""

from __future__ import annotations

import pytest

from bench.__main__ import main


@pytest.mark.parametrize(
    "argv",
    [["--sqlite"], ["--sqlite", "--only-reimbursement"], ["--sqlite", "--only-pharmacy"]],
)
def test_sqlite_only_with_the_phases_that_run_on_it(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert "--sqlite: only with --only-signing" in capsys.readouterr().out
