"""One payment run at a time, cluster-wide: two ``fse pay`` (an operator's and a cut-off's, or
two started at once) never open, write or complete batches side by side.

PostgreSQL: a session advisory lock held on its own connection for the whole run. SQLite (one
machine): an exclusive ``flock`` on a file beside the database. Either is released by the
operating system or the database when the process dies, even by SIGKILL, so a killed run never
blocks the next one. A run that cannot take the lock within ``LOCK_WAIT_SECONDS`` does nothing
and says so (``PaymentsBusy``).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

PAYMENT_RUN_LOCK = 0x46534550
"""PostgreSQL advisory lock key of the payment run (APPROVAL_GATE is 0x46534541)."""
LOCK_WAIT_SECONDS = 5.0
"""Long enough for a killed run's connection to be closed by the server, short enough that
an operator is not left waiting behind a large batch."""
POLL_SECONDS = 0.1


class PaymentsBusy(Exception):
    """Another payment run holds the lock: this one did nothing."""


@asynccontextmanager
async def exclusive_payment_run(
    engine: AsyncEngine, fallback_dir: Path, wait_seconds: float = LOCK_WAIT_SECONDS
) -> AsyncIterator[None]:
    """Hold the payment lock for the block, or raise ``PaymentsBusy``."""
    deadline = time.monotonic() + wait_seconds
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            lock = {"k": PAYMENT_RUN_LOCK}
            while not await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), lock):
                await _wait_or_give_up(deadline)
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), lock)
        return
    path = _lock_file(engine, fallback_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await _wait_or_give_up(deadline)
        yield
    finally:
        os.close(descriptor)  # releases the lock


async def _wait_or_give_up(deadline: float) -> None:
    if time.monotonic() >= deadline:
        raise PaymentsBusy("another fse pay is running")
    await asyncio.sleep(POLL_SECONDS)


def _lock_file(engine: AsyncEngine, fallback_dir: Path) -> Path:
    """Beside the SQLite database: every process paying from it meets the same file."""
    database = engine.url.database or ""
    if database and database != ":memory:":
        return Path(f"{database}.pay-lock")
    return fallback_dir / ".pay-lock"
