"""Secrets made on first use (``fse.crypto.key_files``): workers starting together agree on
one file, and none of them ever reads it half-written (a worker that read an empty signing key
crashed at start and was restarted, seen in ``make bench``)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from fse.crypto.key_files import load_or_create


def _slow_secret() -> bytes:
    time.sleep(0.05)  # making a key takes time; writing a large one too (16 MiB here)
    return b"-----BEGIN SECRET-----\n" + b"x" * (16 << 20) + b"\n-----END SECRET-----\n"


def _read(path: str, queue: multiprocessing.Queue[bytes]) -> None:
    queue.put(load_or_create(Path(path), _slow_secret))


def test_workers_starting_together_read_one_whole_file(tmp_path: Path) -> None:
    for round_ in range(5):
        path = tmp_path / f"round-{round_}" / "secret.pem"
        queue: multiprocessing.Queue[bytes] = multiprocessing.Queue()
        workers = [multiprocessing.Process(target=_read, args=(str(path), queue)) for _ in range(6)]
        for worker in workers:
            worker.start()
        seen = [queue.get(timeout=30) for _ in workers]
        for worker in workers:
            worker.join(30)
        assert {len(s) for s in seen} == {len(_slow_secret())}, round_  # never partial
        assert len(set(seen)) == 1 and seen[0] == path.read_bytes()
        assert path.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in path.parent.iterdir()] == ["secret.pem"]  # no temporary left
