"""A stopping server lets its background work finish unwinding before the last flush: a periodic
flush cancelled mid-statement still holds its connection (and on SQLite the write lock) until its
rollback ends, and a last flush started beside it failed with "database is locked"."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import build_platform


async def test_the_last_flush_waits_for_the_periodic_one_to_unwind(tmp_path: Path) -> None:
    platform, _url = await build_platform(
        "sqlite", tmp_path, api_audit_flush_seconds=0.01, audit_seal_seconds=0
    )
    running = 0
    side_by_side = False
    flushes = 0

    async def flush() -> int:
        """A flush with a statement in flight, whose rollback takes a moment when cancelled."""
        nonlocal running, side_by_side, flushes
        running += 1
        flushes += 1
        side_by_side |= running > 1
        try:
            await asyncio.sleep(0.2)
        finally:
            await asyncio.sleep(0.05)
            running -= 1
        return 0

    platform.app.state.api_audit.flush = flush
    async with platform.app.router.lifespan_context(platform.app):
        await asyncio.sleep(0.05)  # the periodic flush is under way
    assert flushes == 2  # the periodic one, cut short, then the last one
    assert not side_by_side
