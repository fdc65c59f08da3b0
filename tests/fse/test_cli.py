"""`fse migrate` and `fse seed` as a new user runs them (real processes, a fresh SQLite file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fhir_profiles.guide import definitions
from fse.seed import DEMO_ACCOUNTS, demo_bundle


def fse(*args: str, database: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FSE_DATABASE_URL": f"sqlite:///{database}", **environ}
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
    accounts = len(json.loads(DEMO_ACCOUNTS.read_text(encoding="utf-8"))["users"])
    assert f"demo accounts: {accounts} created, 0 already present" in first.stdout
    second = fse("seed", database=database)
    assert f"AMO guide: 0 resources created, {guide} already present" in second.stdout
    assert f"demo data: 0 resources created, {demo} already present" in second.stdout
    assert f"demo accounts: 0 created, {accounts} already present" in second.stdout
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


def test_client_secret_is_shown_once_and_revocation_is_listed(tmp_path: Path) -> None:
    database = tmp_path / "clients.sqlite3"
    assert fse("migrate", database=database).returncode == 0
    created = fse("client", "create", "cnss-sih", "--scopes", "system/Claim.rs", database=database)
    assert created.returncode == 0
    secret = next(
        line.split()[1] for line in created.stdout.splitlines() if line.startswith("client_secret:")
    )
    listed = fse("client", "list", database=database)
    assert "cnss-sih" in listed.stdout and "active" in listed.stdout
    assert secret not in listed.stdout  # stored hashed, never shown again
    assert fse("client", "revoke", "cnss-sih", database=database).returncode == 0
    assert "revoked" in fse("client", "list", database=database).stdout
    again = fse("client", "create", "cnss-sih", "--scopes", "system/Claim.rs", database=database)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_export_writes_the_ndjson_files_with_progress(tmp_path: Path) -> None:
    database = tmp_path / "export.sqlite3"
    assert fse("migrate", database=database).returncode == 0
    assert fse("seed", "--demo", database=database).returncode == 0
    out = tmp_path / "out"
    result = fse(
        "export",
        "--out",
        str(out),
        "--type",
        "Patient,Claim",
        database=database,
        FSE_EXPORT_MAX_LINES_PER_FILE="10",
    )
    assert result.returncode == 0, result.stderr
    assert "export: Patient : " in result.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files[0] == "Claim-1.ndjson" and "Patient-2.ndjson" in files
    patients = [
        json.loads(line)
        for name in files
        if name.startswith("Patient")
        for line in (out / name).read_text(encoding="utf-8").splitlines()
    ]
    assert all(p["resourceType"] == "Patient" for p in patients)
    assert f"export: {len(patients) + 1} resources in 3 file(s)" in result.stdout
    refused = fse("export", "--out", str(out), "--type", "Bogus", database=database)
    assert refused.returncode == 2 and "Bogus" in refused.stderr
