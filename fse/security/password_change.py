"""A signed-in person changes their password.

In one transaction: the argon2 hash is replaced and, for a professional, their signing key is
re-sealed under the new password (the same private key: signatures already made still verify
with the public key on their Practitioner), and their other sessions end. The session that made
the change stays open: its copy of the key is sealed under its cookie, not under the password.
The slow checks (argon2, scrypt) run in threads before the transaction, which then replaces the
row only if it is still the one checked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from fse.crypto.passwords import hash_password, password_matches
from fse.crypto.signing import reseal
from fse.security.sessions import close_other_sessions
from fse.security.tables import users
from fse.security.users import MIN_PASSWORD_LENGTH


class ChangedMeanwhile(Exception):
    """The password or the key changed between the check and the write (another session)."""


class KeyNotOpened(Exception):
    """The password matches but does not open the sealed signing key (they were set apart)."""


@dataclass(frozen=True)
class PasswordChanged:
    sessions_ended: int


def new_password_problem(password: str, new_password: str, confirmation: str) -> dict[str, str]:
    """What is wrong with the new password, per field of the form (French), before the current
    password is even checked; the length rule is account creation's (``MIN_PASSWORD_LENGTH``)."""
    if len(new_password) < MIN_PASSWORD_LENGTH:
        return {"nouveau": f"Au moins {MIN_PASSWORD_LENGTH} caractères."}
    if confirmation != new_password:
        return {"confirmation": "La confirmation ne correspond pas au nouveau mot de passe."}
    if new_password == password:
        return {"nouveau": "Choisissez un mot de passe différent de l'actuel."}
    return {}


async def change_password(
    engine: AsyncEngine, user_pk: int, password: str, new_password: str, session_token: str
) -> PasswordChanged | None:
    """None when ``password`` is not the current one: nothing changed."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(users.c.password_hash, users.c.signing_key).where(users.c.pk == user_pk)
            )
        ).first()
    if row is None or not await asyncio.to_thread(password_matches, row.password_hash, password):
        return None
    new_hash = await asyncio.to_thread(hash_password, new_password)
    sealed = None
    if row.signing_key is not None:
        sealed = await asyncio.to_thread(reseal, row.signing_key, password, new_password)
        if sealed is None:
            raise KeyNotOpened(f"user {user_pk}: the password does not open the signing key")
    async with engine.begin() as conn:
        replaced = await conn.execute(
            update(users)
            .where(
                users.c.pk == user_pk,
                users.c.password_hash == row.password_hash,
                users.c.signing_key.is_(None)
                if row.signing_key is None
                else users.c.signing_key == row.signing_key,
            )
            .values(password_hash=new_hash, signing_key=sealed)
        )
        if replaced.rowcount != 1:
            raise ChangedMeanwhile(f"user {user_pk}: the account changed during the change")
        ended = await close_other_sessions(conn, user_pk, session_token)
    return PasswordChanged(ended)
