"""Failed logins and failed token requests lock out per account (client id) and per address;
successes never count; X-Forwarded-For counts only from a trusted proxy.

The platform here has small limits (3 failures per account or client id, 5 per address) and
trusts the proxies ``TRUSTED``; each test speaks from addresses of its own.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from ipaddress import IPv4Network

import httpx
import pytest

from fse.app import close
from fse.security.users import Role, create_user
from tests.conftest import BACKENDS, Platform, build_platform
from tests.fse.security.test_auth import new_client, token_via_endpoint
from tests.fse.web.test_login import PASSWORD, login
from tests.pharmacy.test_pages import setting
from tests.services import drop_pg_database

PROXY = "10.9.0.1"
TRUSTED = f"{PROXY}, 10.8.0.0/16"
WRONG = "wrong-password-x"
_ADDRESSES: Iterator[IPv4Network] = IPv4Network("100.64.0.0/10").hosts()  # type: ignore[assignment]


def fresh() -> str:
    """An address no other test has used."""
    return str(next(_ADDRESSES))


@pytest.fixture(scope="module", params=BACKENDS)
async def guarded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    built, url = await build_platform(
        request.param,
        tmp_path_factory.mktemp(f"lockout-{request.param}"),
        trusted_proxies=TRUSTED,
        login_failures_per_account=3,
        login_failures_per_address=5,
        token_failures_per_client=3,
        token_failures_per_address=5,
    )
    yield built
    await close(built.app)
    if request.param == "postgresql":
        await drop_pg_database(url)


async def new_user(platform: Platform) -> str:
    name = f"agent.lock.{uuid.uuid4().hex[:8]}"
    await create_user(platform.engine, name, PASSWORD, Role.CNSS_AGENT, "Agent Verrou")
    return name


@asynccontextmanager
async def peer(platform: Platform, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser whose TCP connection comes from ``address``."""
    transport = httpx.ASGITransport(app=platform.app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def login_from(
    http: httpx.AsyncClient, name: str, password: str, forwarded_for: str | None = None
) -> httpx.Response:
    """A fresh visit to the login form (no session yet), then the post."""
    http.cookies.clear()
    http.headers.pop("X-Forwarded-For", None)
    if forwarded_for:
        http.headers["X-Forwarded-For"] = forwarded_for
    return await login(http, name, password)


def assert_locked(response: httpx.Response) -> int:
    assert response.status_code == 429
    assert "Trop de tentatives : réessayez dans" in response.text
    assert "fse_session" not in response.cookies
    return int(response.headers["retry-after"])


async def test_forwarded_for_from_an_untrusted_peer_changes_nothing(guarded: Platform) -> None:
    """The walk-around: guesses from loopback, each with another X-Forwarded-For, used to be
    as many addresses. Loopback is not a trusted proxy: one address, one account."""
    name = await new_user(guarded)
    async with peer(guarded, "127.0.0.1") as http:
        statuses = [
            (await login_from(http, name, WRONG, f"198.51.100.{n}")).status_code for n in range(6)
        ]
    assert statuses == [401] * 3 + [429] * 3
    async with peer(guarded, "127.0.0.2") as http:
        spread = [
            (await login_from(http, f"nobody.{n}", WRONG, f"198.51.100.{n}")).status_code
            for n in range(6)
        ]
    assert spread == [401] * 5 + [429]


async def test_an_account_is_locked_across_many_addresses(guarded: Platform) -> None:
    name, other = await new_user(guarded), await new_user(guarded)
    addresses = [fresh() for _ in range(6)]
    async with peer(guarded, PROXY) as http:
        # the case of the name does not make another account
        typed = [name, name.upper(), name.title(), name, name.upper()]
        statuses = [
            (await login_from(http, spelled, WRONG, address)).status_code
            for spelled, address in zip(typed, addresses, strict=False)
        ]
        assert statuses == [401] * 3 + [429] * 2
        assert assert_locked(await login_from(http, name, PASSWORD, addresses[5])) >= 1
        # the addresses are not locked: another account signs in from them
        assert (await login_from(http, other, PASSWORD, addresses[0])).status_code == 303


async def test_an_address_is_locked_across_accounts(guarded: Platform) -> None:
    name, address = await new_user(guarded), fresh()
    async with peer(guarded, PROXY) as http:
        # through two trusted proxies (10.8.0.0/16 is trusted too): the client is `address`
        chain = f"192.0.2.1, {address}, 10.8.7.7"
        statuses = [
            (await login_from(http, f"guess.{n}", WRONG, chain)).status_code for n in range(5)
        ]
        assert statuses == [401] * 5
        assert_locked(await login_from(http, name, PASSWORD, chain))
        assert (await login_from(http, name, PASSWORD, fresh())).status_code == 303


async def test_successful_logins_never_count(guarded: Platform) -> None:
    name = await new_user(guarded)
    async with peer(guarded, fresh()) as http:
        signed_in = [(await login_from(http, name, PASSWORD)).status_code for _ in range(15)]
        assert signed_in == [303] * 15
        failures = [(await login_from(http, name, WRONG)).status_code for _ in range(4)]
    assert failures == [401] * 3 + [429]


async def test_a_locked_account_refuses_even_the_right_password_until_the_window_passes(
    guarded: Platform,
) -> None:
    name = await new_user(guarded)
    async with setting(guarded, "login_failure_window_seconds", 5), peer(guarded, PROXY) as http:
        for _ in range(3):
            assert (await login_from(http, name, WRONG, fresh())).status_code == 401
        right = await login_from(http, name, PASSWORD, fresh())
        wrong = await login_from(http, name, WRONG, fresh())
        wait = max(assert_locked(right), assert_locked(wrong))
        # no oracle: the right password is not even checked, the answers are the same
        masked = [re.sub(r'name="csrf" value="[^"]+"', "", r.text) for r in (right, wrong)]
        assert masked[0] == masked[1]
        await asyncio.sleep(wait + 0.2)
        assert (await login_from(http, name, PASSWORD, fresh())).status_code == 303


async def test_token_failures_lock_the_client_id_across_addresses(guarded: Platform) -> None:
    client_id, secret = await new_client(guarded, "system/*.rs")
    other_id, other_secret = await new_client(guarded, "system/*.rs")
    async with peer(guarded, PROXY) as http:
        statuses = []
        for _ in range(4):
            http.headers["X-Forwarded-For"] = fresh()
            statuses.append((await token_via_endpoint(http, client_id, "wrong")).status_code)
        assert statuses == [401] * 3 + [429]
        http.headers["X-Forwarded-For"] = fresh()
        refused = await token_via_endpoint(http, client_id, secret)
        assert refused.status_code == 429
        assert refused.json()["error"] == "temporarily_unavailable"
        assert "too many failed client authentications" in refused.json()["error_description"]
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["cache-control"] == "no-store"
        assert (await token_via_endpoint(http, other_id, other_secret)).status_code == 200


async def test_token_failures_lock_the_address_across_client_ids(guarded: Platform) -> None:
    client_id, secret = await new_client(guarded, "system/*.rs")
    address = fresh()
    async with peer(guarded, address) as http:
        statuses = [
            (await token_via_endpoint(http, f"fse-unknown{n}", "x")).status_code for n in range(5)
        ]
        assert statuses == [401] * 5
        assert (await token_via_endpoint(http, client_id, secret)).status_code == 429
    async with peer(guarded, fresh()) as http:
        assert (await token_via_endpoint(http, client_id, secret)).status_code == 200


async def test_successful_token_requests_never_count(guarded: Platform) -> None:
    client_id, secret = await new_client(guarded, "system/*.rs")
    async with peer(guarded, fresh()) as http:
        granted = [
            (await token_via_endpoint(http, client_id, secret)).status_code for _ in range(8)
        ]
    assert granted == [200] * 8


async def test_the_fhir_address_throttle_trusts_only_trusted_proxies(guarded: Platform) -> None:
    async with setting(guarded, "rate_limit_per_minute", 2):
        async with peer(guarded, "127.0.0.3") as http:
            forged = [
                (await http.get("/fhir/metadata", headers={"X-Forwarded-For": fresh()})).status_code
                for _ in range(3)
            ]
        async with peer(guarded, PROXY) as http:
            proxied = [
                (await http.get("/fhir/metadata", headers={"X-Forwarded-For": fresh()})).status_code
                for _ in range(3)
            ]
    assert forged == [200, 200, 429]
    assert proxied == [200, 200, 200]


async def test_cookies_are_secure_when_a_trusted_proxy_saw_https(guarded: Platform) -> None:
    https = {"X-Forwarded-Proto": "https"}
    async with peer(guarded, PROXY) as http:
        assert (
            "secure" in (await http.get("/connexion", headers=https)).headers["set-cookie"].lower()
        )
    async with peer(guarded, "127.0.0.1") as http:
        assert (
            "secure"
            not in (await http.get("/connexion", headers=https)).headers["set-cookie"].lower()
        )
