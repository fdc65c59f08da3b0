"""Server-side web sessions: the cookie holds a random token, the database its hash, the user,
the CSRF token and the expiry. Logging out deletes the row."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fse.crypto.signing import seal_for_session, unseal_for_session
from fse.crypto.tokens import SigningKey
from fse.db import reading
from fse.security.tables import user_sessions, users
from fse.security.users import User, user_from_row

SESSION_LIFETIME = timedelta(hours=8)
COOKIE_NAME = "fse_session"


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    sealed_signing_key: str | None = None

    def signing_key(self, session_token: str) -> SigningKey | None:
        """The professional's private key, unsealed with this session's cookie."""
        if self.sealed_signing_key is None:
            return None
        return unseal_for_session(self.sealed_signing_key, session_token)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(
    engine: AsyncEngine, user: User, signing_key: SigningKey | None = None
) -> tuple[str, Session]:
    """A new session; returns the cookie value (shown once) and the session. A professional's
    signing key, unlocked with their password at login, is kept sealed under the cookie."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    sealed = seal_for_session(signing_key, token) if signing_key is not None else None
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(user_sessions).values(
                token_hash=_hash(token),
                user_pk=user.pk,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + SESSION_LIFETIME,
                signing_key=sealed,
            )
        )
    return token, Session(user, csrf, sealed)


_SESSION = (
    select(
        users,
        user_sessions.c.csrf_token,
        user_sessions.c.expires_at,
        user_sessions.c.signing_key.label("session_signing_key"),
    )
    .join(user_sessions, user_sessions.c.user_pk == users.c.pk)
    .where(user_sessions.c.token_hash == bindparam("token_hash"))
)
"""The session of a cookie's token, with its user: built once, read on every page."""


async def session_for(engine: AsyncEngine, token: str | None) -> Session | None:
    if not token:
        return None
    async with reading(engine) as conn:  # every page: no BEGIN and ROLLBACK around it
        row = (await conn.execute(_SESSION, {"token_hash": _hash(token)})).first()
    if row is None or row.expires_at <= datetime.now(UTC) or row.disabled_at is not None:
        return None
    return Session(user_from_row(row), row.csrf_token, row.session_signing_key)


async def close_session(engine: AsyncEngine, token: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(user_sessions).where(user_sessions.c.token_hash == _hash(token)))


async def close_other_sessions(conn: AsyncConnection, user_pk: int, keep_token: str) -> int:
    """End every session of the user but the one holding ``keep_token`` (in the caller's
    transaction); the number ended."""
    ended = await conn.execute(
        delete(user_sessions).where(
            user_sessions.c.user_pk == user_pk, user_sessions.c.token_hash != _hash(keep_token)
        )
    )
    return ended.rowcount
