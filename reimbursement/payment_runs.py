"""The cut-off's leader row: every server worker wakes at the same cut-off, exactly one runs
``fse pay`` for it, cluster-wide (the row's primary key is the cut-off, on both databases)."""

from __future__ import annotations

import os
import socket
from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from reimbursement.tables import payment_runs


def this_worker() -> str:
    """Who ran a cut-off, as the server's log names it (host and process id)."""
    return f"{socket.gethostname()}:{os.getpid()}"[:140]


async def claim_cutoff(engine: AsyncEngine, cutoff: datetime, now: datetime) -> bool:
    """True when this worker is the one to pay at ``cutoff``; False when another took it."""
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(payment_runs).values(cutoff=cutoff, worker=this_worker(), started_at=now)
            )
    except IntegrityError:
        return False
    return True


async def record_exit(engine: AsyncEngine, cutoff: datetime, code: int, now: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(payment_runs)
            .where(payment_runs.c.cutoff == cutoff)
            .values(finished_at=now, exit_code=code)
        )
