"""A password or client-secret check (~50 ms of argon2) must not stall the worker's other
requests: it runs outside the event loop. Before, a login froze the loop long enough for
Redis calls of other requests to time out and the platform to think Redis was down."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fse.crypto import passwords
from fse.security.clients import authenticate, create_client
from fse.security.users import Role, authenticate_user, create_user
from tests.conftest import Platform


@pytest.fixture
def hash_threads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each argon2 check: was it made on the thread running the event loop?"""
    seen: list[bool] = []
    hasher = passwords.HASHER

    class Watched:
        def verify(self, stored: str, password: str) -> bool:
            try:
                asyncio.get_running_loop()
                seen.append(True)
            except RuntimeError:
                seen.append(False)
            return hasher.verify(stored, password)

        def hash(self, password: str) -> str:
            return hasher.hash(password)

    monkeypatch.setattr(passwords, "HASHER", Watched())
    return seen


async def test_login_checks_the_password_outside_the_event_loop(
    platform: Platform, hash_threads: list[bool]
) -> None:
    await create_user(
        platform.engine, "offloop", "un mot de passe sûr", Role.CNSS_AGENT, "Off Loop"
    )
    assert await authenticate_user(platform.engine, "offloop", "un mot de passe sûr") is not None
    assert await authenticate_user(platform.engine, "offloop", "pas le bon mot") is None
    assert await authenticate_user(platform.engine, "nobody", "un mot de passe sûr") is None
    assert hash_threads == [False, False, False]
    assert threading.current_thread() is threading.main_thread()


async def test_client_secret_is_checked_outside_the_event_loop(
    platform: Platform, hash_threads: list[bool]
) -> None:
    client, secret = await create_client(platform.engine, "offloop-si", "system/*.read")
    assert await authenticate(platform.engine, client.client_id, secret) is not None
    assert await authenticate(platform.engine, client.client_id, "wrong") is None
    assert hash_threads == [False, False]
