"""Rotating the token signing key (`fse keys rotate`): the new key signs, the old one verifies
until its tokens have expired, every worker follows the ring file without a restart."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from bench.harness import listening_sockets
from fse.cli import main
from fse.crypto.key_ring import (
    CLOCK_MARGIN_SECONDS,
    RingFileError,
    TokenKeys,
    read_ring,
    rotate,
)
from fse.crypto.tokens import InvalidToken, issue, load_or_create_key, verify
from fse.db import create_engine
from fse.security.clients import create_client
from tests.fse.test_serve import wait_for
from tests.services import free_port, server_env

AUDIENCE = "urn:fse:fhir"
CLAIMS = {"iss": AUDIENCE, "aud": AUDIENCE, "sub": "client-1", "scope": "system/*.rs"}
TTL, CHECK = 300, 5.0
T0 = 1_900_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def kid_of(token: str) -> str:
    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def with_kid(token: str, kid: str) -> str:
    """The token with another kid in its header (the signature left as it was)."""
    _header, payload, signature = token.split(".")
    header = {"alg": "ES256", "typ": "at+jwt", "kid": kid}
    encoded = base64.urlsafe_b64encode(orjson.dumps(header)).rstrip(b"=").decode()
    return f"{encoded}.{payload}.{signature}"


def check(keys: TokenKeys, token: str) -> dict[str, object]:
    return verify(keys.find, token, AUDIENCE, AUDIENCE, now=keys.clock())


def kids(keys: TokenKeys) -> list[str]:
    return [jwk["kid"] for jwk in keys.jwks()["keys"]]


def test_a_rotation_signs_with_the_new_key_and_accepts_the_old_until_its_tokens_expire(
    tmp_path: Path,
) -> None:
    ring_file, platform_file = tmp_path / "token-keys.json", tmp_path / "platform.pem"
    platform = load_or_create_key(platform_file)
    clock = Clock(T0)
    worker = TokenKeys(ring_file, platform, CHECK, clock)
    # Never rotated: the platform key signs tokens, as before rotations existed.
    assert worker.signer() == platform and kids(worker) == [platform.kid]
    before = issue(worker.signer(), CLAIMS, TTL, now=clock.now)

    first = rotate(ring_file, platform_file, TTL, CHECK, now=T0).ring
    assert first.current.kid != platform.kid
    assert [(old.key.kid, old.retires_at) for old in first.previous] == [
        (platform.kid, T0 + TTL + CHECK + CLOCK_MARGIN_SECONDS)
    ]
    assert stat.S_IMODE(ring_file.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    clock.now = T0 + CHECK  # the worker looks at the file again
    assert worker.signer().kid == first.current.kid
    assert kids(worker) == [first.current.kid, platform.kid]
    after = issue(worker.signer(), CLAIMS, 3600, now=clock.now)
    assert kid_of(after) == first.current.kid
    assert check(worker, before)["sub"] == "client-1"
    assert check(worker, after)["sub"] == "client-1"

    # A second rotation: the first rotated key retires in turn, the platform key still waits.
    clock.now = T0 + 100
    long_lived = issue(worker.signer(), CLAIMS, 3600, now=clock.now)  # outlives its key
    second = rotate(ring_file, platform_file, TTL, CHECK, now=clock.now)
    retires = clock.now + TTL + CHECK + CLOCK_MARGIN_SECONDS
    assert [(old.key.kid, old.retires_at) for old in second.ring.previous] == [
        (first.current.kid, retires),
        (platform.kid, T0 + TTL + CHECK + CLOCK_MARGIN_SECONDS),
    ]
    clock.now += CHECK
    assert check(worker, long_lived)["sub"] == "client-1"
    assert kids(worker) == [second.ring.current.kid, first.current.kid, platform.kid]

    # Past its retirement the first rotated key verifies nothing and leaves the JWKS.
    clock.now = retires
    with pytest.raises(InvalidToken, match="not signed by this platform"):
        check(worker, long_lived)
    assert kids(worker) == [second.ring.current.kid, platform.kid]
    # The platform key no longer verifies tokens, but stays published: it signs receipts.
    with pytest.raises(InvalidToken, match="not signed by this platform"):
        check(worker, issue(platform, CLAIMS, 3600, now=clock.now))

    # The next rotation drops from the file the keys past their retirement.
    third = rotate(ring_file, platform_file, TTL, CHECK, now=clock.now)
    assert set(third.dropped) == {first.current.kid, platform.kid}
    assert [old.key.kid for old in third.ring.previous] == [second.ring.current.kid]
    reread = read_ring(ring_file, platform)
    assert [reread.current.kid, *(old.key.kid for old in reread.previous)] == [
        third.ring.current.kid,
        second.ring.current.kid,
    ]


def test_a_token_whose_kid_was_changed_is_refused(tmp_path: Path) -> None:
    ring_file, platform_file = tmp_path / "token-keys.json", tmp_path / "platform.pem"
    platform = load_or_create_key(platform_file)
    rotated = rotate(ring_file, platform_file, TTL, CHECK, now=T0).ring
    worker = TokenKeys(ring_file, platform, CHECK, Clock(T0 + 1))
    token = issue(rotated.current, CLAIMS, TTL, now=T0)
    assert check(worker, token)["sub"] == "client-1"
    # Naming the other key of the ring: its signature does not verify under that key.
    with pytest.raises(InvalidToken, match="bad signature"):
        check(worker, with_kid(token, platform.kid))
    with pytest.raises(InvalidToken, match="not signed by this platform"):
        check(worker, with_kid(token, "AAAAAAAAAAAAAAAA"))
    _header, payload, signature = token.split(".")
    not_an_object = base64.urlsafe_b64encode(b'["ES256"]').rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="malformed"):
        check(worker, f"{not_an_object}.{payload}.{signature}")


def test_an_unknown_kid_makes_a_worker_read_the_ring_at_once(tmp_path: Path) -> None:
    """Another worker started signing with the new key before this one looked at the file."""
    ring_file, platform_file = tmp_path / "token-keys.json", tmp_path / "platform.pem"
    platform = load_or_create_key(platform_file)
    clock = Clock(T0)
    worker = TokenKeys(ring_file, platform, CHECK, clock)
    rotated = rotate(ring_file, platform_file, TTL, CHECK, now=T0).ring
    assert worker.signer() == platform  # not looked yet
    token = issue(rotated.current, CLAIMS, TTL, now=T0)
    assert check(worker, token)["sub"] == "client-1"
    assert worker.signer().kid == rotated.current.kid


def test_a_damaged_ring_file_keeps_the_ring_a_worker_has(tmp_path: Path) -> None:
    ring_file, platform_file = tmp_path / "token-keys.json", tmp_path / "platform.pem"
    platform = load_or_create_key(platform_file)
    rotated = rotate(ring_file, platform_file, TTL, CHECK, now=T0).ring
    clock = Clock(T0)
    worker = TokenKeys(ring_file, platform, CHECK, clock)
    ring_file.write_text("{half a file")
    clock.now += CHECK
    assert worker.signer().kid == rotated.current.kid
    with pytest.raises(RingFileError, match="fse keys rotate"):
        read_ring(ring_file, platform)


def test_the_keys_command_rotates_and_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ring_file, platform_file = tmp_path / "token-keys.json", tmp_path / "platform.pem"
    monkeypatch.setenv("FSE_TOKEN_KEYS_FILE", str(ring_file))
    monkeypatch.setenv("FSE_SIGNING_KEY_FILE", str(platform_file))
    monkeypatch.setenv("FSE_TOKEN_TTL_SECONDS", "600")
    started = time.time()
    assert main(["keys", "rotate"]) == 0
    printed = capsys.readouterr().out
    ring = read_ring(ring_file, load_or_create_key(platform_file))
    old = ring.previous[0]
    assert f"new token signing key: {ring.current.kid}" in printed
    assert f"previous key {old.key.kid}: tokens accepted until 20" in printed
    assert str(ring_file) in printed and "without a restart" in printed
    assert old.retires_at >= started + 600 + CHECK + CLOCK_MARGIN_SECONDS
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert f"current {ring.current.kid}: signs new tokens" in listed
    assert f"previous {old.key.kid}: accepted until" in listed
    assert f"platform key {old.key.kid}: signs receipts" in listed
    ring_file.write_text("not json")
    assert main(["keys", "rotate"]) == 1
    error = capsys.readouterr().err
    assert "is not a token key ring" in error and "restore it from a backup" in error


def test_a_running_server_follows_the_rotation_in_every_worker(tmp_path: Path) -> None:
    database = tmp_path / "keys.sqlite3"
    port = free_port()
    env = server_env(
        f"sqlite+aiosqlite:///{database}",
        tmp_path,
        FSE_PORT=str(port),
        FSE_PAYMENT_SCHEDULE="false",
        FSE_TOKEN_KEYS_CHECK_SECONDS="0.5",
    )
    subprocess.run([sys.executable, "-m", "fse.cli", "migrate"], env=env, check=True, timeout=120)

    async def new_client() -> tuple[str, str]:
        engine = create_engine(env["FSE_DATABASE_URL"])
        try:
            client, secret = await create_client(engine, "rotation", "system/*.rs")
        finally:
            await engine.dispose()
        return client.client_id, secret

    client_id, secret = asyncio.run(new_client())
    server = subprocess.Popen(
        [sys.executable, "-m", "fse.cli", "serve", "--workers", "2", "--quiet"], env=env
    )
    base = f"http://127.0.0.1:{port}"

    def fresh(method: str, path: str, **kwargs: object) -> httpx.Response:
        """A new connection each time, so the requests spread over both workers."""
        with httpx.Client(base_url=base, timeout=10) as http:
            return http.request(method, path, **kwargs)  # type: ignore[arg-type]

    def token() -> str:
        answer = fresh(
            "POST",
            "/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def reads(bearer: str) -> list[int]:
        headers = {"Authorization": f"Bearer {bearer}"}
        return [fresh("GET", "/fhir/Patient", headers=headers).status_code for _ in range(8)]

    try:
        assert wait_for(lambda: listening_sockets(port) == 2, 60)
        old = token()
        rotated = subprocess.run(
            [sys.executable, "-m", "fse.cli", "keys", "rotate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert rotated.returncode == 0, rotated.stderr
        ring = read_ring(
            Path(env["FSE_TOKEN_KEYS_FILE"]), load_or_create_key(Path(env["FSE_SIGNING_KEY_FILE"]))
        )
        assert f"new token signing key: {ring.current.kid}" in rotated.stdout
        time.sleep(0.6)  # the workers' look at the file (FSE_TOKEN_KEYS_CHECK_SECONDS)
        new_tokens = [token() for _ in range(8)]
        assert {kid_of(t) for t in new_tokens} == {ring.current.kid}
        published = [
            [k["kid"] for k in fresh("GET", "/.well-known/jwks.json").json()["keys"]]
            for _ in range(4)
        ]
        assert published == [[ring.current.kid, kid_of(old)]] * 4
        assert reads(old) == [200] * 8
        assert reads(new_tokens[0]) == [200] * 8
        # The new key leaks: revoked, its tokens are refused at once, even those each worker
        # had already verified and remembered.
        revoked = subprocess.run(
            [sys.executable, "-m", "fse.cli", "keys", "rotate", "--revoke"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert revoked.returncode == 0, revoked.stderr
        assert f"previous key {ring.current.kid}: revoked" in revoked.stdout
        time.sleep(0.6)
        assert reads(new_tokens[0]) == [401] * 8
        assert reads(old) == [401] * 8
        assert reads(token()) == [200] * 8
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_revoking_rotation_refuses_the_leaked_key_at_once(tmp_path: Path) -> None:
    ring_file, platform_file = tmp_path / "token-keys.json", tmp_path / "platform.pem"
    platform = load_or_create_key(platform_file)
    leaked = rotate(ring_file, platform_file, TTL, CHECK, now=T0).ring.current
    clock = Clock(T0 + 10)
    worker = TokenKeys(ring_file, platform, CHECK, clock)
    stolen = issue(leaked, CLAIMS, TTL, now=clock.now)
    assert check(worker, stolen)["sub"] == "client-1"
    revoked = rotate(ring_file, platform_file, TTL, CHECK, now=clock.now, revoke=True)
    assert set(revoked.dropped) == {platform.kid}
    clock.now += CHECK
    with pytest.raises(InvalidToken, match="not signed by this platform"):
        check(worker, stolen)
    assert kids(worker) == [revoked.ring.current.kid, platform.kid]
