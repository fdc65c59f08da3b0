"""Secrets kept in files under ``var/`` (the token signing key and ring, the CIN keys): mode
600, and never seen half-written. A file is first written whole under a temporary name in the
same folder, then put in place: linked when it is made on first use (``os.link`` fails if the
name exists, so workers starting at once agree on the first one), renamed over when it is
replaced."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def _written(path: Path, content: bytes) -> Path:
    """``content`` in a temporary file beside ``path``, flushed to disk (mode 600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _sync_folder(path: Path) -> None:
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the new name itself survives a crash
    finally:
        os.close(directory)


def load_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The file's bytes; ``make()`` writes them first if the file is absent."""
    if not path.exists():
        temporary = _written(path, make())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another worker won the race: use its file
        else:
            _sync_folder(path)
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_bytes()


def replace_atomically(path: Path, content: bytes) -> None:
    """Write ``path`` (mode 600) so that a reader sees the old file or the new one, never half
    of one."""
    temporary = _written(path, content)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(path)
