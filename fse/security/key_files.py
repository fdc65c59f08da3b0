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
