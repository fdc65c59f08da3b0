"""Serving: one uvicorn server per process, each on its own SO_REUSEPORT socket.

With uvicorn's shared listening socket, whichever worker wakes first accepts a whole burst of
keep-alive connections: under the benchmark all 16 clients landed on one of two workers while the
other idled. With one socket per worker the kernel spreads connections across the workers.

What the HTTP parser refuses before the app sees it (httptools reads no URL over 64 KB; bytes
after a Content-Length shorter than the body make a broken next request) still answers an
OperationOutcome (:class:`FhirHttpProtocol`); the app refuses URLs over 8 KB itself (414).
"""

from __future__ import annotations

import copy
import errno
import multiprocessing
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any

import orjson
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fse.errors import ErrorCode, Issue, operation_outcome
from fse.security.headers import RAW_EVERY_RESPONSE

APP = "fse.app:create_app"


class FhirHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, but a request its parser refuses (a URL over 64 KB, bytes
    left over after a Content-Length shorter than the body, a malformed header) is answered
    with an OperationOutcome, as the app answers, rather than uvicorn's plain text."""

    def send_400_response(self, msg: str) -> None:
        issue = Issue(ErrorCode.INVALID_REQUEST, f"not a valid HTTP/1.1 request: {msg}")
        body = orjson.dumps(operation_outcome([issue]))
        head = [b"HTTP/1.1 400 Bad Request"]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [name + b": " + value for name, value in RAW_EVERY_RESPONSE]
        head += [
            b"content-type: application/fhir+json",
            b"content-length: " + str(len(body)).encode(),
            b"cache-control: no-store",
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()


def _socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class PortUnavailable(Exception):
    """The address cannot be listened on; the message says why and what to do (French first,
    then English), for a terminal, without a traceback."""


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port`` (None: it can). Asked before anything
    is printed or spawned, so ``make run`` on a taken port says so instead of announcing a
    server and dying with ``OSError: [Errno 98]``."""
    try:
        _socket(host, port, reuse_port=False).close()
    except OSError as error:
        return unavailable_message(host, port, error)
    return None


def unavailable_message(host: str, port: int, error: OSError) -> str:
    other = port + 10 if port + 10 <= 65535 else 8010
    if error.errno == errno.EADDRINUSE:
        return (
            f"le port {port} est déjà utilisé ; choisissez-en un autre : PORT={other} make run "
            f"(ou fse serve --port {other})\n"
            f"port {port} is already in use; choose another one: PORT={other} make run"
        )
    if error.errno == errno.EACCES:
        return (
            f"le port {port} est réservé (droits administrateur) ; choisissez-en un autre : "
            f"PORT={other} make run\nport {port} needs privileges; choose another one"
        )
    return (
        f"impossible d'écouter sur {host}:{port} ({error.strerror}) ; vérifiez FSE_HOST et "
        f"FSE_PORT\ncannot listen on {host}:{port} ({error.strerror})"
    )


PLATFORM_LOGGERS = ("fse", "fhir_profiles", "prescriber", "pharmacy", "reimbursement")


def _logging() -> dict[str, Any]:
    """uvicorn's logging, plus the platform's own loggers on stderr from INFO (payment runs at
    a cut-off, Redis outages and recoveries, reference data reloads), ``--quiet`` or not: it
    silences uvicorn's access log and chatter only."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["platform"] = {"format": "%(asctime)s %(name)s %(levelname)s: %(message)s"}
    config["handlers"]["platform"] = {
        "class": "logging.StreamHandler",
        "formatter": "platform",
        "stream": "ext://sys.stderr",
    }
    for name in PLATFORM_LOGGERS:
        config["loggers"][name] = {"handlers": ["platform"], "level": "INFO", "propagate": False}
    return config


def _config(quiet: bool) -> uvicorn.Config:
    """uvicorn must not rewrite the client from X-Forwarded-For (by default it trusts any
    loopback peer): fse/addresses.py decides, from FSE_TRUSTED_PROXIES."""
    return uvicorn.Config(
        APP,
        factory=True,
        http=FhirHttpProtocol,
        proxy_headers=False,
        access_log=not quiet,
        log_config=_logging(),
        log_level="warning" if quiet else "info",
    )


def _worker(host: str, port: int, quiet: bool) -> None:
    sock = _socket(host, port, reuse_port=True)
    uvicorn.Server(_config(quiet)).run(sockets=[sock])


def serve(host: str, port: int, workers: int, quiet: bool) -> int:
    """Serve until interrupted; restart a worker that dies."""
    if workers <= 1:
        try:
            sock = _socket(host, port, reuse_port=False)
        except OSError as error:  # taken between the check and now
            raise PortUnavailable(unavailable_message(host, port, error)) from None
        uvicorn.Server(_config(quiet)).run(sockets=[sock])
        return 0
    context = multiprocessing.get_context("spawn")
    processes: list[multiprocessing.process.BaseProcess] = []
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker, args=(host, port, quiet), daemon=False)
        process.start()
        return process

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processes = [start() for _ in range(workers)]
    while not stopping:
        time.sleep(0.5)
        for index, process in enumerate(processes):
            if not process.is_alive() and not stopping:
                print(
                    f"worker {process.pid} exited ({process.exitcode}); restarting", file=sys.stderr
                )
                processes[index] = start()
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=15)
    return 0
