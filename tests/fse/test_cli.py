"""`fse migrate` and `fse seed` as a new user runs them (real processes, a fresh SQLite file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fhir_profiles.guide import definitions
from fse.seed import demo_bundle


def fse(*args: str, database: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FSE_DATABASE_URL": f"sqlite:///{database}"}
    return subprocess.run(
        [sys.executable, "-m", "fse.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_then_seed_is_idempotent(tmp_path: Path) -> None:
    database = tmp_path / "demo.sqlite3"
    assert fse("migrate", database=database).returncode == 0
    first = fse("seed", "--demo", database=database)
    assert first.returncode == 0, first.stderr
    guide = len(definitions())
    assert f"AMO guide: {guide} resources created, 0 already present" in first.stdout
    demo = len(demo_bundle()["entry"])
    assert f"demo data: {demo} resources created, 0 already present" in first.stdout
    assert "demo accounts: 5 created, 0 already present" in first.stdout
    second = fse("seed", database=database)
    assert f"AMO guide: 0 resources created, {guide} already present" in second.stdout
    assert f"demo data: 0 resources created, {demo} already present" in second.stdout
    assert "demo accounts: 0 created, 5 already present" in second.stdout
    guide_only = fse("seed", "--guide-only", database=database)
    assert "demo data" not in guide_only.stdout


def test_seed_before_migrate_says_what_to_do(tmp_path: Path) -> None:
    result = fse("seed", database=tmp_path / "empty.sqlite3")
    assert result.returncode == 1
    assert "fse migrate" in result.stderr


def test_user_create_reads_the_password_from_stdin(tmp_path: Path) -> None:
    database = tmp_path / "users.sqlite3"
    assert fse("migrate", database=database).returncode == 0
    env = {**os.environ, "FSE_DATABASE_URL": f"sqlite:///{database}"}
    command = [
        sys.executable,
        "-m",
        "fse.cli",
        "user",
        "create",
        "agent.x",
        "--role",
        "cnss_agent",
        "--name",
        "Agent X",
        "--password-stdin",
    ]
    created = subprocess.run(
        command,
        env=env,
        input="a-long-enough-password\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0 and "user agent.x (Agent CNSS) created" in created.stdout
    short = subprocess.run(
        [*command[:5], "agent.y", *command[6:]],
        env=env,
        input="short\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert short.returncode == 1 and "at least 12 characters" in short.stderr
