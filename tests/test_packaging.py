"""What a user installs runs: the wheel, without extras, in a fresh virtualenv whose dependencies
come from the runtime lock, away from this source tree; and the locks pin what pyproject asks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from uv import find_uv_bin

from tests.services import free_port, server_env

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fse", "fhir_profiles", "prescriber", "pharmacy", "reimbursement")
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def tracked(*paths: str) -> list[str]:
    """The files git knows under ``paths``: what a clean clone holds."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return [name for name in listed.stdout.decode().split("\0") if name]


def outside_the_tree(env: dict[str, str]) -> dict[str, str]:
    """An environment that cannot reach this source tree (the tests may run with PYTHONPATH);
    the first command writes the bytecode the next ones read (uv installs none)."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"}
    dropped.add("PYTHONDONTWRITEBYTECODE")
    return {k: v for k, v in env.items() if k not in dropped} | {"PYTHONNOUSERSITE": "1"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the tracked files (setuptools writes into its source)."""
    source = tmp_path_factory.mktemp("source")
    for name in tracked("pyproject.toml", "README.md", *PACKAGES):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*build, "--wheel-dir", dist, source], capture_output=True, text=True, timeout=300
    )
    # the build uses this environment's setuptools: the dev lock's, after `make install`
    assert done.returncode == 0, f"pip wheel failed (`make install`?):\n{done.stderr[-3000:]}"
    (built,) = dist.glob("fse_platform-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the runtime lock (hashes required) and the wheel, no extras."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    uv = [find_uv_bin(), "pip", "install", "--quiet", "--python", python]
    lock = ROOT / "requirements" / "runtime.lock"
    subprocess.run([*uv, "--require-hashes", "-r", lock], check=True, timeout=600)
    subprocess.run([*uv, "--no-deps", wheel], check=True, timeout=120)
    return venv


def test_the_wheel_carries_every_file_of_the_packages(wheel: Path) -> None:
    """Code and data: reference lists, the guide's definitions, templates, static, migrations."""
    inside = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in tracked(*PACKAGES) if name not in inside]
    assert missing == []
    assert "reimbursement/data/medicines/2014-06-23-cnops-2014.json" in inside


def test_the_installed_wheel_imports_from_its_virtualenv(venv: Path, tmp_path: Path) -> None:
    code = "import fse, fhir_profiles, pharmacy, prescriber, reimbursement; print(fse.__file__)"
    done = subprocess.run(
        [venv / "bin" / "python", "-c", code],
        cwd=tmp_path,
        env=outside_the_tree(dict(os.environ)),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert Path(done.stdout.strip()).is_relative_to(venv / "lib")


def test_fse_help_runs_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [venv / "bin" / "fse", "--help"],
        cwd=tmp_path,
        env=outside_the_tree(dict(os.environ)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert {"serve", "migrate", "seed"} <= set(re.findall(r"\w+", done.stdout))


@pytest.fixture
def served(venv: Path, tmp_path: Path) -> Iterator[str]:
    """``fse migrate`` then ``fse serve`` from the wheel on SQLite; yields the base URL."""
    port = free_port()
    env = server_env(f"sqlite:///{tmp_path / 'fse.sqlite3'}", tmp_path, FSE_PORT=str(port))
    env = outside_the_tree(env)
    fse = str(venv / "bin" / "fse")
    subprocess.run([fse, "migrate"], cwd=tmp_path, env=env, check=True, timeout=120)
    server = subprocess.Popen([fse, "serve", "--quiet"], cwd=tmp_path, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "fse serve stopped"
            try:
                httpx.get(base + "/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "fse serve did not answer within 60 s"
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_wheel_migrates_and_serves_its_pages(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as http:
        assert http.get("/health").status_code == 200
        assert http.get("/fhir/metadata").json()["resourceType"] == "CapabilityStatement"
        home = http.get("/")  # a template
        assert home.status_code == 200
        assert "Plateforme FSE" in home.text
        about = http.get("/a-propos")  # cites the reference lists the wheel carries
        assert about.status_code == 200
        assert "CNOPS" in about.text
        assert http.get("/connexion").status_code == 200
        stylesheets = re.findall(r'href="(/static/[^"]+[.]css)"', home.text)
        assert stylesheets
        assert all(http.get(path).status_code == 200 for path in stylesheets)
        assert "swagger" in http.get("/docs").text.lower()


def pins(lock: str) -> dict[str, tuple[str, str | None]]:
    """name -> (version, marker) of a lock file; every pin followed by its hashes."""
    found: dict[str, tuple[str, str | None]] = {}
    lines = (ROOT / "requirements" / lock).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        match = PIN.match(line)
        if match:
            assert lines[number + 1].strip().startswith("--hash=sha256:"), line
            found[canonicalize_name(match[1])] = (match[2], match[3])
    return found


def test_the_locks_pin_every_dependency_pyproject_asks() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime, dev = pins("runtime.lock"), pins("dev.lock")
    for asked, lock in [
        (project["dependencies"], runtime),
        (project["dependencies"] + project["optional-dependencies"]["dev"], dev),
    ]:
        for requirement in map(Requirement, asked):
            name = canonicalize_name(requirement.name)
            assert name in lock, f"{name} is not locked: run `make lock`"
            assert requirement.specifier.contains(lock[name][0], prereleases=True), (
                f"{name}=={lock[name][0]} does not satisfy {requirement}: run `make lock`"
            )
    # what the wheel test installs is what the suite runs with
    assert {name: dev.get(name) for name in runtime} == runtime


def test_the_lock_reader_sees_pins_and_markers() -> None:
    """Guard the guard: the pattern reads a plain pin and one with a marker."""
    plain = PIN.match("ruff==0.17.6 \\")
    marked = PIN.match("colorama==0.4.6 ; sys_platform == 'win32' \\")
    assert plain and plain.groups() == ("ruff", "0.17.6", None)
    assert marked and marked.groups() == ("colorama", "0.4.6", "sys_platform == 'win32'")
    assert PIN.match("    --hash=sha256:0123") is None
