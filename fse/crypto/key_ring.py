"""The token signing keys as a ring: the current key signs new access tokens; the keys it
replaced are still accepted, and published in the JWKS, until every token they signed has
expired (their retirement time), then dropped.

``fse keys rotate`` writes the ring file (``FSE_TOKEN_KEYS_FILE``: JSON, mode 600, replaced
atomically, rotations serialised by a lock file). Each worker re-reads it when it changed,
looked at every ``FSE_TOKEN_KEYS_CHECK_SECONDS`` and at once for a token naming a kid it does
not know, so a rotation reaches every worker without a restart and a token from any key of the
ring verifies in every worker.

Before the first rotation there is no ring file: the platform key (``FSE_SIGNING_KEY_FILE``)
signs tokens, as it always did. That key also signs dispense receipts and derives the access
codes printed on patient copies (which must keep working for months), so rotating tokens never
replaces it: it stays in the JWKS, for the receipts, after it stops signing tokens.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fse.crypto.key_files import replace_atomically
from fse.crypto.tokens import SigningKey, key_from_pem, load_or_create_key, new_key

log = logging.getLogger("fse.security")

CLOCK_MARGIN_SECONDS = 60
"""Added to a retired key's acceptance: clocks of servers sharing the ring differ a little."""


class RingFileError(ValueError):
    """The ring file cannot be read as a key ring; the message says what to do."""


@dataclass(frozen=True)
class RetiringKey:
    key: SigningKey
    retires_at: float
    """Epoch seconds after which no token it signed is still valid: then refused and unlisted."""


@dataclass(frozen=True)
class KeyRing:
    current: SigningKey
    previous: tuple[RetiringKey, ...] = ()

    def accepted(self, now: float) -> list[SigningKey]:
        """The keys whose tokens verify at ``now``: the current one first."""
        return [self.current, *(old.key for old in self.previous if old.retires_at > now)]

    def find(self, kid: str, now: float) -> SigningKey | None:
        return next((key for key in self.accepted(now) if key.kid == kid), None)


def _instant(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _ring_json(ring: KeyRing) -> bytes:
    entries: list[dict[str, Any]] = [
        {"kid": ring.current.kid, "retires_at": None, "pem": ring.current.pem().decode()}
    ]
    entries += [
        {"kid": old.key.kid, "retires_at": _instant(old.retires_at), "pem": old.key.pem().decode()}
        for old in ring.previous
    ]
    return orjson.dumps({"version": 1, "keys": entries}, option=orjson.OPT_INDENT_2)


def read_ring(path: Path, platform_key: SigningKey) -> KeyRing:
    """The ring in ``path``; without the file, the platform key alone (never rotated yet)."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return KeyRing(platform_key)
    try:
        entries = orjson.loads(content)["keys"]
        current = key_from_pem(entries[0]["pem"].encode(), f"{path}: the current key")
        previous = tuple(
            RetiringKey(
                key_from_pem(entry["pem"].encode(), f"{path}: key {entry.get('kid')}"),
                datetime.fromisoformat(entry["retires_at"]).timestamp(),
            )
            for entry in entries[1:]
        )
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise RingFileError(
            f"{path} is not a token key ring ({exc}); restore it from a backup, or move it "
            "aside and run `fse keys rotate` (tokens signed by its keys will be refused)"
        ) from exc
    return KeyRing(current, previous)


@dataclass(frozen=True)
class Rotation:
    ring: KeyRing
    dropped: tuple[str, ...]
    """Kids of keys past their retirement time, removed from the file by this rotation."""


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One rotation at a time (two at once would each drop the other's new key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def rotate(
    path: Path,
    platform_key_file: Path,
    token_ttl_seconds: int,
    check_seconds: float,
    now: float | None = None,
    revoke: bool = False,
) -> Rotation:
    """A new current key; the one it replaces is accepted until every token it may still sign
    has expired: the token lifetime, plus the time a worker may take to see the new ring
    (``check_seconds``), plus a margin for clocks. Keys already past that leave the file.
    ``revoke`` (a key that leaked): every previous key is refused at once, and its tokens."""
    moment = time.time() if now is None else now
    with _locked(path):
        ring = read_ring(path, load_or_create_key(platform_key_file))
        # whole seconds, rounded up: the file keeps them so
        retires_at = math.ceil(moment + token_ttl_seconds + check_seconds + CLOCK_MARGIN_SECONDS)
        if revoke:
            retires_at = math.floor(moment)
        kept = tuple(old for old in ring.previous if old.retires_at > moment and not revoke)
        dropped = tuple(old.key.kid for old in ring.previous if old not in kept)
        rotated = KeyRing(new_key(), (RetiringKey(ring.current, retires_at), *kept))
        replace_atomically(path, _ring_json(rotated))
    return Rotation(rotated, dropped)


class TokenKeys:
    """One worker's view of the ring: the key that signs, the keys that verify, the JWKS."""

    def __init__(
        self,
        path: Path,
        platform_key: SigningKey,
        check_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path, self.platform_key = path, platform_key
        self.check_seconds, self.clock = check_seconds, clock
        self._stamp = self._stat()
        self._ring = read_ring(path, platform_key)
        self._checked = clock()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_mtime_ns, found.st_size

    def ring(self, force: bool = False) -> KeyRing:
        """The ring, re-read if its file changed (looked at most every ``check_seconds``,
        unless ``force``). A file that cannot be read keeps the ring this worker has."""
        now = self.clock()
        if force or now - self._checked >= self.check_seconds:
            self._checked = now
            stamp = self._stat()
            if stamp != self._stamp:
                try:
                    self._ring = read_ring(self.path, self.platform_key)
                except (OSError, RingFileError):
                    log.warning("token keys unchanged: %s unreadable", self.path, exc_info=True)
                else:
                    self._stamp = stamp
        return self._ring

    def signer(self) -> SigningKey:
        """The key new tokens are signed with."""
        return self.ring().current

    def find(self, kid: str) -> SigningKey | None:
        """The accepted key named ``kid``; an unknown kid first makes the worker look at the file
        (a token signed by a key another worker has just started using)."""
        now = self.clock()
        return self.ring().find(kid, now) or self.ring(force=True).find(kid, now)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys: those that verify tokens now, then the platform key (receipts)."""
        keys = self.ring().accepted(self.clock())
        if all(key.kid != self.platform_key.kid for key in keys):
            keys.append(self.platform_key)
        return {"keys": [key.jwk() for key in keys]}
