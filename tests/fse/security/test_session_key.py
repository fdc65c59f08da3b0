"""A professional's signing key is unlocked at login and usable only with their session cookie."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from fse.security.sessions import COOKIE_NAME, session_for
from fse.security.tables import user_sessions
from fse.security.users import Role, create_user
from tests.conftest import Platform
from tests.fse.web.test_login import PASSWORD, login


async def test_login_keeps_the_key_sealed_under_the_session_cookie(
    platform: Platform, browser: httpx.AsyncClient
) -> None:
    name = f"dr.{uuid.uuid4().hex[:8]}"
    user = await create_user(platform.engine, name, PASSWORD, Role.PRESCRIBER, "Dr Clé")
    assert (await login(browser, name)).status_code == 303
    cookie = browser.cookies[COOKIE_NAME]
    session = await session_for(platform.engine, cookie)
    assert session is not None
    key = session.signing_key(cookie)
    assert key is not None and key.jwk() == user.signing_jwk
    assert session.signing_key("another-cookie") is None
    async with platform.engine.connect() as conn:
        stored = await conn.scalar(
            select(user_sessions.c.signing_key).where(user_sessions.c.user_pk == user.pk)
        )
    assert stored and "BEGIN" not in stored and user.signing_jwk["x"] not in stored


async def test_agents_have_no_signing_key_in_session(
    platform: Platform, browser: httpx.AsyncClient
) -> None:
    name = f"agent.{uuid.uuid4().hex[:8]}"
    await create_user(platform.engine, name, PASSWORD, Role.CNSS_AGENT, "Agent")
    assert (await login(browser, name)).status_code == 303
    session = await session_for(platform.engine, browser.cookies[COOKIE_NAME])
    assert session is not None and session.signing_key(browser.cookies[COOKIE_NAME]) is None
