"""Logging in to the web UI: French pages, sessions, CSRF, throttling, no open redirect."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from fse.security.sessions import COOKIE_NAME
from fse.security.tables import user_sessions, users
from fse.security.users import Role, create_user
from tests.conftest import Platform

PASSWORD = "correct-horse-battery"


@pytest.fixture
async def username(platform: Platform) -> str:
    name = f"dr.test.{uuid.uuid4().hex[:8]}"
    await create_user(platform.engine, name, PASSWORD, Role.PRESCRIBER, "Dr Test")
    return name


async def login(
    browser: httpx.AsyncClient,
    name: str,
    password: str = PASSWORD,
    suite: str = "/espace",
    csrf: str | None = None,
) -> httpx.Response:
    page = await browser.get("/connexion")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    form = {
        "identifiant": name,
        "mot_de_passe": password,
        "suite": suite,
        "csrf": token[1] if csrf is None else csrf,
    }
    return await browser.post("/connexion", data=form)


async def sessions_of(platform: Platform, name: str) -> int:
    async with platform.engine.connect() as conn:
        return await conn.scalar(
            select(func.count())
            .select_from(user_sessions.join(users))
            .where(users.c.username == name)
        )


async def test_login_page_is_french_and_carries_csrf(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/connexion")
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text and "Se connecter" in page.text
    assert "fse_login_csrf" in page.cookies


async def test_login_opens_a_session_and_the_workspace(
    browser: httpx.AsyncClient, platform: Platform, username: str
) -> None:
    response = await login(browser, username)
    assert response.status_code == 303 and response.headers["location"] == "/espace"
    cookie = response.headers["set-cookie"]
    assert COOKIE_NAME in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    workspace = await browser.get("/espace")
    assert workspace.status_code == 200
    assert (
        f"<strong>{username}</strong>" in workspace.text
        and "Médecin prescripteur" in workspace.text
    )
    async with platform.engine.connect() as conn:
        stored = await conn.scalar(select(user_sessions.c.token_hash).limit(1))
    assert browser.cookies[COOKIE_NAME] != stored  # the database keeps only a hash


async def test_wrong_password_or_unknown_user_open_nothing(
    browser: httpx.AsyncClient, platform: Platform, username: str
) -> None:
    for name, password in ((username, "wrong-password-x"), ("nobody", PASSWORD)):
        response = await login(browser, name, password)
        assert response.status_code == 401
        assert "Identifiant ou mot de passe incorrect." in response.text
        assert COOKIE_NAME not in response.cookies
    assert await sessions_of(platform, username) == 0


async def test_login_without_the_form_token_is_refused(
    browser: httpx.AsyncClient, platform: Platform, username: str
) -> None:
    response = await login(browser, username, csrf="forged")
    assert response.status_code == 403
    assert await sessions_of(platform, username) == 0


@pytest.mark.parametrize("password", [b"%FF%FE", b"\xff\xfe"])
async def test_a_form_that_is_not_utf8_is_a_400_page_and_opens_nothing(
    browser: httpx.AsyncClient, platform: Platform, username: str, password: bytes
) -> None:
    token = csrf_of(await browser.get("/connexion"))
    body = b"identifiant=" + username.encode() + b"&mot_de_passe=" + password
    response = await browser.post(
        "/connexion",
        content=body + b"&suite=%2Fespace&csrf=" + token.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
    )
    assert response.status_code == 400
    assert "Requête incorrecte" in response.text and '<html lang="fr">' in response.text
    assert await sessions_of(platform, username) == 0


async def test_login_attempts_are_throttled(browser: httpx.AsyncClient, username: str) -> None:
    statuses = [(await login(browser, username, "wrong-password-x")).status_code for _ in range(11)]
    assert statuses == [401] * 10 + [429]
    locked = await login(browser, username)  # even the right password, until the window passes
    assert locked.status_code == 429 and "Trop de tentatives" in locked.text
    assert 1 <= int(locked.headers["retry-after"]) <= 2 * 15 * 60


async def test_pages_need_a_session(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/espace")
    assert response.status_code == 303
    assert response.headers["location"] == "/connexion?suite=/espace"


async def test_no_redirect_to_another_site(browser: httpx.AsyncClient, username: str) -> None:
    for target in ("//evil.example/", "https://evil.example/", "espace"):
        response = await login(browser, username, suite=target)
        assert response.headers["location"] == "/espace"
        await browser.post("/deconnexion", data={"csrf": csrf_of(await browser.get("/espace"))})


async def test_logout_needs_csrf_and_ends_the_session(
    browser: httpx.AsyncClient, platform: Platform, username: str
) -> None:
    await login(browser, username)
    refused = await browser.post("/deconnexion", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert (await browser.get("/espace")).status_code == 200
    done = await browser.post("/deconnexion", data={"csrf": csrf_of(await browser.get("/espace"))})
    assert done.status_code == 303 and done.headers["location"] == "/connexion"
    assert await sessions_of(platform, username) == 0
    assert (await browser.get("/espace")).status_code == 303


async def test_expired_session_is_not_a_session(
    browser: httpx.AsyncClient, platform: Platform, username: str
) -> None:
    await login(browser, username)
    async with platform.engine.begin() as conn:
        await conn.execute(
            update(user_sessions).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert (await browser.get("/espace")).status_code == 303


async def test_passwords_are_stored_as_argon2(platform: Platform, username: str) -> None:
    async with platform.engine.connect() as conn:
        stored = await conn.scalar(
            select(users.c.password_hash).where(users.c.username == username)
        )
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    return match[1]


async def test_cookies_are_secure_over_https(platform: Platform, username: str) -> None:
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as https:
        form_page = await https.get("/connexion")
        assert "Secure" in form_page.headers["set-cookie"]
        response = await login(https, username)
        session_cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith(COOKIE_NAME)
        )
        assert "Secure" in session_cookie and "HttpOnly" in session_cookie
