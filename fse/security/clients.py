"""CNSS system clients (OAuth2 client credentials): registered by `fse client create`, the
secret shown once and kept only as an argon2 hash."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from fse.crypto.passwords import hash_password, password_matches
from fse.security.scopes import Grant, parse
from fse.security.tables import system_clients


class ClientExists(Exception):
    pass


@dataclass(frozen=True)
class SystemClient:
    name: str
    client_id: str
    scopes: str
    revoked: bool

    @property
    def grants(self) -> tuple[Grant, ...]:
        return parse(self.scopes)


async def create_client(engine: AsyncEngine, name: str, scopes: str) -> tuple[SystemClient, str]:
    """Register a client; returns it with its secret (never stored, never shown again)."""
    parse(scopes)  # refuse bad scopes before storing anything
    client_id = f"fse-{secrets.token_hex(8)}"
    secret = secrets.token_urlsafe(32)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(system_clients).values(
                    name=name,
                    client_id=client_id,
                    secret_hash=hash_password(secret),
                    scopes=" ".join(scopes.split()),
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError as exc:
        raise ClientExists(f"a client named {name!r} already exists") from exc
    return SystemClient(name, client_id, " ".join(scopes.split()), False), secret


async def revoke_client(engine: AsyncEngine, name: str) -> SystemClient | None:
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                update(system_clients)
                .where(system_clients.c.name == name, system_clients.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
                .returning(system_clients.c.client_id, system_clients.c.scopes)
            )
        ).first()
    return SystemClient(name, row.client_id, row.scopes, True) if row else None


async def list_clients(engine: AsyncEngine) -> list[SystemClient]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(system_clients).order_by(system_clients.c.name))
        return [SystemClient(r.name, r.client_id, r.scopes, r.revoked_at is not None) for r in rows]


async def find_client(engine: AsyncEngine, client_id: str) -> tuple[SystemClient, str] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(system_clients).where(system_clients.c.client_id == client_id)
            )
        ).first()
    if row is None:
        return None
    return SystemClient(
        row.name, row.client_id, row.scopes, row.revoked_at is not None
    ), row.secret_hash


async def authenticate(engine: AsyncEngine, client_id: str, secret: str) -> SystemClient | None:
    """The active client with this id and secret, else None (timing does not tell which failed)."""
    found = await find_client(engine, client_id)
    matches = await asyncio.to_thread(password_matches, found[1] if found else None, secret)
    if not matches or found is None:
        return None
    return None if found[0].revoked else found[0]
