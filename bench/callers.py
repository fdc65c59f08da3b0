"""Who the benchmarks call as: a registered system client with its token, and a doctor signed
in through the login page, made the way an integrator and a person would."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import orjson

from bench.harness import Connection
from bench.resources import BENCH_DOCTOR

SYSTEM_SCOPES = "system/*.cruds"


async def authenticate(port: int, database_url: str) -> None:
    """Register a bench client and get its token from /auth/token, as an integrator would;
    every ``Connection`` then carries it."""
    from fse.db import create_engine
    from fse.security.clients import create_client

    engine = create_engine(database_url)
    try:
        client, secret = await create_client(engine, f"bench-{uuid.uuid4().hex[:8]}", SYSTEM_SCOPES)
    finally:
        await engine.dispose()
    Connection.client_id = client.client_id
    Connection.credentials = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    await renew_token(port)


async def renew_token(port: int) -> None:
    """A fresh token for the bench client, as an integrator gets one before the last expires
    (a run longer than ``FSE_TOKEN_TTL_SECONDS``: the soak)."""
    conn = await Connection.open("127.0.0.1", port)
    credentials = Connection.credentials
    status, _, payload = await conn.request(
        "POST",
        "/auth/token",
        b"grant_type=client_credentials",
        "application/x-www-form-urlencoded",
        f"Basic {credentials}",
    )
    conn.close()
    if status != 200:
        raise RuntimeError(f"could not get a token: {status} {payload[:200]!r}")
    Connection.token = orjson.loads(payload)["access_token"]


def bench_token(app: Any, settings: Any, client_id: str) -> str:
    """A token for ``client_id`` signed by an in-process app's key (no /auth/token round)."""
    from fse.crypto.tokens import issue

    audience = settings.token_audience
    claims = {"iss": audience, "aud": audience, "sub": client_id, "scope": SYSTEM_SCOPES}
    return issue(app.state.signing_key, claims, 3600)


async def bench_doctor(database_url: str) -> tuple[str, str]:
    """A doctor's account linked to the bench's provider: (user name, password)."""
    from fse.db import create_engine
    from fse.security.users import Role, create_user

    name, password = f"bench.{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    engine = create_engine(database_url)
    try:
        await create_user(engine, name, password, Role.PRESCRIBER, "Dr Bench", BENCH_DOCTOR)
    finally:
        await engine.dispose()
    return name, password


async def sign_in_doctor(port: int, database_url: str) -> str:
    """The bench doctor signed in through /connexion: the session cookie a person's FHIR calls
    carry."""
    name, password = await bench_doctor(database_url)
    return await sign_in(port, name, password)


async def sign_in(port: int, name: str, password: str) -> str:
    """``name`` signed in through /connexion as a browser does: their session cookie (a
    professional's signing key opened in it)."""
    conn = await Connection.open("127.0.0.1", port)
    try:
        _, headers, page = await conn.request("GET", "/connexion", cookie="none=1")
        csrf = page.split(b'name="csrf" value="', 1)[1].split(b'"', 1)[0].decode()
        login_cookie = headers["set-cookie"].split(";", 1)[0]
        form = f"identifiant={name}&mot_de_passe={password}&suite=%2Fespace&csrf={csrf}"
        status, headers, _ = await conn.request(
            "POST",
            "/connexion",
            form.encode(),
            "application/x-www-form-urlencoded",
            None,
            login_cookie,
        )
    finally:
        conn.close()
    cookies = [c.split(";", 1)[0] for c in headers.get("set-cookie", "").splitlines()]
    session = next((c for c in cookies if c.startswith("fse_session=")), None)
    if status != 303 or session is None:
        raise RuntimeError(f"{name} could not sign in: {status}")
    return session
