"""A real server (fresh SQLite, migrated and seeded with the CLI) and real Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM_ARGS = [
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


SERVER_ENV: dict[str, str] = {}
"""The environment the server runs with (its database), for CLI commands run beside it."""

CLIENT: dict[str, str] = {}
"""The system client `fse client create` registered for this session (id and secret)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("e2e") / "fse.sqlite3"
    port = _free_port()
    env = {**os.environ, "FSE_DATABASE_URL": f"sqlite:///{database}", "FSE_PORT": str(port)}
    env.pop("FSE_REDIS_URL", None)
    env["FSE_SIGNING_KEY_FILE"] = str(database.parent / "signing-key.pem")
    env["FSE_TOKEN_KEYS_FILE"] = str(database.parent / "token-keys.json")
    env["FSE_PAYMENTS_DIR"] = str(database.parent / "payments")
    env["FSE_REFERENCE_DATA_DIR"] = str(database.parent / "reference-data")
    SERVER_ENV.update(env)
    for command in (["migrate"], ["seed", "--demo"]):
        subprocess.run(
            [sys.executable, "-m", "fse.cli", *command], env=env, check=True, timeout=120
        )
    registered = subprocess.run(
        [sys.executable, "-m", "fse.cli", "client", "create", "e2e", "--scopes", "system/*.rs"],
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
    credentials = dict(
        line.split(":", 1) for line in registered.splitlines() if line.startswith("client_")
    )
    CLIENT.update({k: v.strip() for k, v in credentials.items()})
    process = subprocess.Popen([sys.executable, "-m", "fse.cli", "serve", "--quiet"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/fhir/metadata", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the server did not start; see its output above")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def api_token(server: str) -> str:
    """A token obtained as an integrator would: client registered by the CLI, then /auth/token."""
    response = httpx.post(
        f"{server}/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT["client_id"], CLIENT["client_secret"]),
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        raise RuntimeError(
            "chromium is not installed: run `make chromium` (apt-get install chromium)"
        )
    args = [*CHROMIUM_ARGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=args)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="fr-MA")
    opened = context.new_page()
    yield opened
    context.close()
