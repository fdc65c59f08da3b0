"""People who log in to the web UI: doctors, pharmacists, labs and CNSS agents.

Passwords are argon2 hashes; a failed login takes the same time whether or not the user exists.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from fse.crypto.jose import with_thumbprint
from fse.crypto.passwords import hash_password, password_matches
from fse.crypto.signing import new_signing_key, unseal
from fse.crypto.tokens import SigningKey
from fse.security.tables import users

MIN_PASSWORD_LENGTH = 12


class Role(StrEnum):
    PRESCRIBER = "prescriber"
    PHARMACIST = "pharmacist"
    LAB = "lab"
    CNSS_AGENT = "cnss_agent"


SIGNING_ROLES = frozenset({Role.PRESCRIBER, Role.PHARMACIST, Role.LAB})
"""Professionals who sign what they enter (prescriptions, dispensings, results)."""


ROLE_LABELS = {
    Role.PRESCRIBER: "Médecin prescripteur",
    Role.PHARMACIST: "Pharmacien",
    Role.LAB: "Laboratoire",
    Role.CNSS_AGENT: "Agent CNSS",
}


class UserError(ValueError):
    pass


@dataclass(frozen=True)
class User:
    pk: int
    username: str
    display_name: str
    role: Role
    practitioner: str | None
    signing_jwk: dict[str, str] | None = None

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[self.role]


async def create_user(
    engine: AsyncEngine,
    username: str,
    password: str,
    role: Role,
    display_name: str,
    practitioner: str | None = None,
) -> User:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    sealed = new_signing_key(password) if role in SIGNING_ROLES else None
    try:
        async with engine.begin() as conn:
            pk = (
                await conn.execute(
                    insert(users)
                    .values(
                        username=username,
                        display_name=display_name,
                        role=role.value,
                        password_hash=hash_password(password),
                        practitioner=practitioner,
                        signing_key=sealed.sealed if sealed else None,
                        signing_public_jwk=orjson.dumps(sealed.public_jwk).decode()
                        if sealed
                        else None,
                        created_at=datetime.now(UTC),
                    )
                    .returning(users.c.pk)
                )
            ).scalar_one()
    except IntegrityError as exc:
        raise UserError(f"a user named {username!r} already exists") from exc
    return User(
        pk, username, display_name, role, practitioner, sealed.public_jwk if sealed else None
    )


def user_from_row(row: Any) -> User:
    # the kid recomputed: keys stored before RFC 7638 ids carry a home-made one
    jwk = with_thumbprint(orjson.loads(row.signing_public_jwk)) if row.signing_public_jwk else None
    return User(row.pk, row.username, row.display_name, Role(row.role), row.practitioner, jwk)


async def unlock_signing_key(
    engine: AsyncEngine, username: str, password: str
) -> SigningKey | None:
    """The user's private signing key, opened with their password (None if wrong or none)."""
    async with engine.connect() as conn:
        sealed = await conn.scalar(select(users.c.signing_key).where(users.c.username == username))
    return await asyncio.to_thread(unseal, sealed, password) if sealed else None


async def find_user(engine: AsyncEngine, username: str) -> User | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.username == username))).first()
    return user_from_row(row) if row is not None and row.disabled_at is None else None


async def authenticate_user(engine: AsyncEngine, username: str, password: str) -> User | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.username == username))).first()
    stored = row.password_hash if row is not None else None
    if not await asyncio.to_thread(password_matches, stored, password):
        return None
    return user_from_row(row) if row is not None and row.disabled_at is None else None
