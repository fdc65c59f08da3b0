"""Insured a professional looked up: what the access model's ``looked-up`` rule opens.

A pharmacist sees the prescriptions of the insured in front of them, not everyone's: looking the
insured up by identifier (CIN, immatriculation, care-sheet number on the pharmacy screen; an
identifier search through the API) opens their prescriptions to that account for
``LOOKUP_VALIDITY``. Rows are appended; expired ones are swept by the next lookup.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fse.security.access import LOOKUP_VALIDITY
from fse.security.tables import insured_lookups


async def record_lookups(
    engine: AsyncEngine, user_pk: int, patient_ids: Iterable[str], now: datetime
) -> None:
    """Open these insured to the account for ``LOOKUP_VALIDITY`` (its own short transaction)."""
    ids = sorted(set(patient_ids))
    if not ids:
        return
    rows = [
        {
            "user_pk": user_pk,
            "patient_id": pid,
            "looked_up_at": now,
            "expires_at": now + LOOKUP_VALIDITY,
        }
        for pid in ids
    ]
    async with engine.begin() as conn:
        await conn.execute(
            delete(insured_lookups).where(
                insured_lookups.c.user_pk == user_pk, insured_lookups.c.expires_at <= now
            )
        )
        await conn.execute(insert(insured_lookups), rows)


async def looked_up(conn: AsyncConnection, user_pk: int, now: datetime) -> tuple[str, ...]:
    """The insured currently open to the account, by Patient id."""
    rows = await conn.execute(
        select(insured_lookups.c.patient_id)
        .where(insured_lookups.c.user_pk == user_pk, insured_lookups.c.expires_at > now)
        .distinct()
    )
    return tuple(sorted(rows.scalars()))
