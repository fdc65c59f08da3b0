"""`fse serve --workers 2`: one listening socket per worker, restart on crash, clean stop."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.harness import listening_sockets
from tests.services import free_port, server_env


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
    port = free_port()
    env = server_env(f"sqlite:///{database}", tmp_path, FSE_PORT=str(port))
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
    port = free_port()
    env = server_env(
        f"sqlite:///{tmp_path / 'serve.sqlite3'}",
        tmp_path,
        FSE_PORT=str(port),
        FSE_RATE_LIMIT_PER_MINUTE="3",
        FSE_LOGIN_FAILURES_PER_ADDRESS="3",
    )
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


def raw_exchange(port: int, data: bytes, seconds: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client fixes them) and read the answer until the server
    closes the connection: status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    return int(status_line.split()[1]), headers, body


def outcome_code(headers: dict[str, str], body: bytes) -> str:
    assert headers["content-type"].startswith("application/fhir+json"), (headers, body)
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome["issue"][0]["details"]["coding"][0]["code"]


def test_requests_broken_at_the_http_level_get_an_operation_outcome(tmp_path: Path) -> None:
    """Long URLs and lying Content-Lengths: uvicorn answered a plain-text 400, or nothing
    until the client gave up (a Content-Length larger than the body)."""
    port = free_port()
    env = server_env(
        f"sqlite:///{tmp_path / 'serve.sqlite3'}",
        tmp_path,
        FSE_PORT=str(port),
        FSE_BODY_TIMEOUT_SECONDS="1",
        FSE_PAYMENT_SCHEDULE="false",
    )
    cli = [sys.executable, "-m", "fse.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, timeout=120, capture_output=True)
    created = subprocess.run(
        [*cli, "client", "create", "edges", "--scopes", "system/*.cruds"],
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
    client_id = re.search(r"client_id:\s*(\S+)", created)
    secret = re.search(r"client_secret:\s*(\S+)", created)
    assert client_id and secret, created
    server = subprocess.Popen([*cli, "serve", "--quiet"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: answers(base + "/"))
        token = httpx.post(
            base + "/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id[1], secret[1]),
        ).json()["access_token"]
        auth = f"Host: x\r\nAuthorization: Bearer {token}\r\n".encode()
        json_body = b"Content-Type: application/fhir+json\r\n"
        patient = b'{"resourceType":"Patient"}'

        def url(size: int) -> bytes:
            return b"GET /fhir/Patient?family=" + b"a" * size + b" HTTP/1.1\r\n" + auth

        status, headers, body = raw_exchange(port, url(20_000) + b"Connection: close\r\n\r\n")
        assert (status, outcome_code(headers, body)) == (414, "FSE-0040")
        status, headers, body = raw_exchange(port, url(100_000) + b"\r\n")
        assert (status, outcome_code(headers, body)) == (400, "FSE-0021")
        assert headers["x-content-type-options"] == "nosniff"
        shorter = b"POST /fhir/Patient HTTP/1.1\r\n" + auth + json_body + b"Content-Length: 5\r\n"
        status, headers, body = raw_exchange(port, shorter + b"\r\n" + patient)
        assert (status, outcome_code(headers, body)) == (400, "FSE-0021")
        larger = b"POST /fhir/Patient HTTP/1.1\r\n" + auth + json_body + b"Content-Length: 90\r\n"
        started = time.monotonic()
        status, headers, body = raw_exchange(port, larger + b"\r\n" + patient)
        assert (status, outcome_code(headers, body)) == (408, "FSE-0041")
        assert time.monotonic() - started < 8
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_taken_port_is_said_in_french_with_how_to_choose_another(tmp_path: Path) -> None:
    """`make run` while another server holds the port: no "FSE platform on http://…" followed
    by a traceback, but what to do, and a failing exit status for make."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = server_env(
            f"sqlite:///{tmp_path / 'serve.sqlite3'}",
            tmp_path,
            FSE_HOST="127.0.0.1",
            FSE_PORT=str(port),
        )
        for extra in ([], ["--workers", "2"]):
            done = subprocess.run(
                [sys.executable, "-m", "fse.cli", "serve", "--quiet", *extra],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode != 0
            assert f"le port {port} est déjà utilisé" in done.stderr
            assert f"PORT={port + 10} make run" in done.stderr
            assert "Traceback" not in done.stderr + done.stdout
            assert "Errno" not in done.stderr and "FSE platform on" not in done.stdout
