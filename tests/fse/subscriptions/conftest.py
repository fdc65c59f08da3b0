"""Our own redis-server, on its own port, that a test may stop and start again (its stream is
kept on disk, as a production Redis keeps it across a restart)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from fse.runtime.events import RedisEventStream

PERSISTED = ("--appendonly", "yes", "--save", "", "--bind", "127.0.0.1")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class OwnRedis:
    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

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
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def stream(self) -> RedisEventStream:
        return RedisEventStream(Redis.from_url(f"redis://127.0.0.1:{self.port}/0"), "fse-own")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    redis = OwnRedis(tmp_path, _free_port())
    redis.start()
    yield redis
    redis.stop()
