"""Secrets kept in files under ``var/`` (the token signing key, the CIN keys): made on first
use with mode 600. Several workers starting at once agree on the first one written."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def load_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The file's bytes; ``make()`` writes them first if the file is absent."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        content = make()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another worker won the race: use its file
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
    return path.read_bytes()


def replace_atomically(path: Path, content: bytes) -> None:
    """Write ``path`` (mode 600) so that a reader sees the old file or the new one, never half
    of one: a temporary file in the same folder, flushed to disk, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)
