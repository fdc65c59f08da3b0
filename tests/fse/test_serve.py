"""`fse serve --workers 2`: one listening socket per worker, restart on crash, clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from fse.bench import _free_port, listening_sockets


def wait_for(predicate: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def worker_pids(parent: int) -> list[int]:
    """Children running a server worker (multiprocessing also starts a resource tracker)."""
    pids = []
    for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            pids.append(int(pid))
    return pids


def test_two_workers_listen_serve_restart_and_stop(tmp_path: Path) -> None:
    database = tmp_path / "serve.sqlite3"
    port = _free_port()
    env = {**os.environ, "FSE_DATABASE_URL": f"sqlite:///{database}", "FSE_PORT": str(port)}
    env.pop("FSE_REDIS_URL", None)
    subprocess.run([sys.executable, "-m", "fse.cli", "migrate"], env=env, check=True, timeout=120)
    server = subprocess.Popen(
        [sys.executable, "-m", "fse.cli", "serve", "--workers", "2", "--quiet"], env=env
    )
    try:
        assert wait_for(lambda: listening_sockets(port) == 2)
        response = httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=5)
        assert response.status_code == 200
        first, _second = worker_pids(server.pid)
        os.kill(first, signal.SIGKILL)
        assert wait_for(
            lambda: first not in worker_pids(server.pid) and len(worker_pids(server.pid)) == 2
        )
        assert wait_for(lambda: listening_sockets(port) == 2)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    assert listening_sockets(port) == 0


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_forwarded_for_from_loopback_is_not_trusted(tmp_path: Path) -> None:
    """uvicorn used to rewrite the client from X-Forwarded-For for any loopback peer, so one
    local client forging the header was as many addresses: no throttle ever bit."""
    port = _free_port()
    env = {
        **os.environ,
        "FSE_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}",
        "FSE_PORT": str(port),
        "FSE_SIGNING_KEY_FILE": str(tmp_path / "signing-key.pem"),
        "FSE_CIN_KEY_FILE": str(tmp_path / "cin-keys.json"),
        "FSE_RATE_LIMIT_PER_MINUTE": "3",
        "FSE_LOGIN_FAILURES_PER_ADDRESS": "3",
    }
    for name in ("FSE_REDIS_URL", "FSE_TRUSTED_PROXIES"):
        env.pop(name, None)
    subprocess.run([sys.executable, "-m", "fse.cli", "migrate"], env=env, check=True, timeout=120)
    server = subprocess.Popen([sys.executable, "-m", "fse.cli", "serve", "--quiet"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: answers(base + "/"))
        with httpx.Client(base_url=base, timeout=10) as http:
            forged = [
                http.get("/fhir/metadata", headers={"X-Forwarded-For": f"203.0.113.{n}"})
                for n in range(4)
            ]
            assert [r.status_code for r in forged] == [200, 200, 200, 429]
            logins = []
            for n in range(4):
                http.cookies.clear()
                form = http.get("/connexion", headers={"X-Forwarded-Proto": "https"})
                assert "secure" not in form.headers["set-cookie"].lower()
                assert "strict-transport-security" not in form.headers
                csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
                assert csrf
                posted = http.post(
                    "/connexion",
                    data={"identifiant": f"guess.{n}", "mot_de_passe": "x", "csrf": csrf[1]},
                    headers={"X-Forwarded-For": f"203.0.113.{n}"},
                )
                logins.append(posted.status_code)
            assert logins == [401, 401, 401, 429]
    finally:
        server.terminate()  # one worker: uvicorn re-raises SIGTERM once stopped
        server.wait(timeout=30)
