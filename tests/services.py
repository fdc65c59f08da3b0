"""Real PostgreSQL and Redis for the tests (started by `make test`; a missing one fails the run)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from fse.runtime.events import RedisEventStream

PG_ADMIN_URL = os.environ.get(
    "FSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def create_pg_database() -> str:
    """A fresh, empty database; returns its SQLAlchemy URL."""
    name = f"fse_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def migrate(url: str) -> None:
    from fse.migrate import upgrade

    upgrade(url)


async def migrate_async(url: str) -> None:
    await asyncio.to_thread(migrate, url)


def server_env(database_url: str, files: Path, **settings: str) -> dict[str, str]:
    """The environment of an ``fse`` subprocess a test starts: no ``FSE_`` variable inherited
    (no shared Redis unless ``settings`` names one), every file the server writes under
    ``files``, then ``settings`` (``FSE_…`` names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSE_")}
    return env | {
        "FSE_DATABASE_URL": database_url,
        "FSE_SIGNING_KEY_FILE": str(files / "signing-key.pem"),
        "FSE_TOKEN_KEYS_FILE": str(files / "token-keys.json"),
        "FSE_CIN_KEY_FILE": str(files / "cin-keys.json"),
        "FSE_PAYMENTS_DIR": str(files / "payments"),
        "FSE_REFERENCE_DATA_DIR": str(files / "reference-data"),
        "FSE_EXPORT_DIR": str(files / "exports"),
        **settings,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PERSISTED = ("--appendonly", "yes", "--save", "", "--bind", "127.0.0.1")


@dataclass
class OwnRedis:
    """A test's own redis-server on its own port, that it may stop, start again (same port;
    its data kept on disk, as a production Redis keeps it across a restart) or freeze (a
    blackholed Redis: connections are accepted, nothing answers). Never the shared one."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: `make services` installs it"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--dir", str(self.directory), *PERSISTED],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "our redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a frozen server must be able to exit
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stream(self) -> RedisEventStream:
        return RedisEventStream(Redis.from_url(self.url), "fse-own")
