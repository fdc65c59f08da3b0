"""People who log in to the web UI: doctors, pharmacists, labs and CNSS agents.

Passwords are argon2 hashes; a failed login takes the same time whether or not the user exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from fse.security.passwords import hash_password, password_matches
from fse.security.tables import users

MIN_PASSWORD_LENGTH = 12


class Role(StrEnum):
    PRESCRIBER = "prescriber"
    PHARMACIST = "pharmacist"
    LAB = "lab"
    CNSS_AGENT = "cnss_agent"


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
                        created_at=datetime.now(UTC),
                    )
                    .returning(users.c.pk)
                )
            ).scalar_one()
    except IntegrityError as exc:
        raise UserError(f"a user named {username!r} already exists") from exc
    return User(pk, username, display_name, role, practitioner)


def user_from_row(row: object) -> User:
    return User(row.pk, row.username, row.display_name, Role(row.role), row.practitioner)  # type: ignore[attr-defined]


async def find_user(engine: AsyncEngine, username: str) -> User | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.username == username))).first()
    return user_from_row(row) if row is not None and row.disabled_at is None else None


async def authenticate_user(engine: AsyncEngine, username: str, password: str) -> User | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.username == username))).first()
    if not password_matches(row.password_hash if row is not None else None, password):
        return None
    return user_from_row(row) if row is not None and row.disabled_at is None else None
