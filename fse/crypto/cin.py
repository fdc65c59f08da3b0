"""The CIN at rest: AES-256-GCM under a configured key, and a keyed blind index to find it.

A database dump must not reveal the insured's national ID number. Each sealed value names the key
it was sealed under (``enc:v1:<key id>:<base64url(nonce + ciphertext)>``, the key id being the
associated data), so keys can be rotated while the servers run: the first configured key seals,
every configured key opens. Lookups and uniqueness use ``HMAC-SHA256(index key, CIN)``
(``bi:v1:<base64url>``) under a separate key, so rotating the encryption key leaves the index
as it is; rotating the index key means re-indexing (docs/security.md).

Keys come from ``FSE_CIN_KEYS`` ("id:base64,id:base64", the first is current) and
``FSE_CIN_INDEX_KEY``, or, when both are unset, from ``FSE_CIN_KEY_FILE``, created (mode 600)
with random keys on first run like the token signing key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fhir_profiles.identifiers import normalized_cin
from fse.config import Settings
from fse.crypto.key_files import load_or_create
from fse.errors import ErrorCode, FhirError

SEALED_PREFIX = "enc:v1:"
BLIND_PREFIX = "bi:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class CinKeyError(ValueError):
    """The CIN keys are misconfigured (raised at start-up, before anything is served)."""


class CinUnreadable(FhirError):
    """A stored CIN the configured keys cannot open: a removed key, or a wrong one."""

    status = 500
    issue_type = "exception"

    def __init__(self, diagnostics: str) -> None:
        super().__init__(diagnostics, code=ErrorCode.CIN_KEY_UNAVAILABLE)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_bytes(text: str, what: str) -> bytes:
    try:
        key = base64.b64decode(text.strip().replace("-", "+").replace("_", "/") + "==")
    except (binascii.Error, ValueError):
        raise CinKeyError(f"{what} is not base64") from None
    if len(key) != KEY_BYTES:
        raise CinKeyError(f"{what} must be {KEY_BYTES} bytes (base64 of 32 random bytes)")
    return key


def parse_keys(text: str) -> dict[str, bytes]:
    """``id:base64,id:base64`` -> keys in order (the first is current)."""
    keys: dict[str, bytes] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        kid, sep, material = item.partition(":")
        if not sep or not KEY_ID_RE.match(kid):
            raise CinKeyError(f"CIN key {kid!r}: write id:base64key, id of letters, digits, - or _")
        if kid in keys:
            raise CinKeyError(f"CIN key id {kid!r} appears twice")
        keys[kid] = _key_bytes(material, f"CIN key {kid!r}")
    if not keys:
        raise CinKeyError("no CIN encryption key configured (FSE_CIN_KEYS)")
    return keys


def new_key_line(now: datetime | None = None) -> str:
    """A fresh ``id:base64`` entry for FSE_CIN_KEYS (``fse cin new-key``)."""
    moment = now or datetime.now(UTC)
    kid = f"{moment:%Y%m%d}-{os.urandom(2).hex()}"
    return f"{kid}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


@dataclass(frozen=True)
class CinVault:
    """Seals, opens and blinds CIN values with the configured keys."""

    keys: dict[str, bytes]
    """Encryption keys by id; the first is current."""
    index_key: bytes

    @property
    def current(self) -> str:
        return next(iter(self.keys))

    def seal(self, value: str) -> str:
        kid = self.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[kid]).encrypt(nonce, value.encode(), kid.encode())
        return f"{SEALED_PREFIX}{kid}:{_b64url(nonce + sealed)}"

    def open(self, token: str) -> str:
        """The clear CIN of a sealed value; CinUnreadable says which key is missing."""
        kid, _, body = token.removeprefix(SEALED_PREFIX).partition(":")
        key = self.keys.get(kid)
        if key is None:
            raise CinUnreadable(
                f"a stored CIN is sealed under key '{kid}', which is not configured: add it back "
                "to FSE_CIN_KEYS (after the current key) and run `fse cin rotate` before "
                "removing it (docs/security.md)"
            )
        try:
            raw = _unb64url(body)
            return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], kid.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error):
            raise CinUnreadable(
                f"a stored CIN does not open with key '{kid}': the key configured under that id "
                "is not the one it was sealed with, or the value was altered (docs/security.md)"
            ) from None

    def blind(self, value: str) -> str:
        """The index value of a CIN: equal CINs, equal index; nothing about the CIN without
        the index key."""
        digest = hmac.new(self.index_key, normalized_cin(value).encode(), hashlib.sha256).digest()
        return BLIND_PREFIX + _b64url(digest)

    def is_current(self, token: str) -> bool:
        return token.startswith(f"{SEALED_PREFIX}{self.current}:")


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


def is_blind(value: str) -> bool:
    return value.startswith(BLIND_PREFIX)


def vault_for(settings: Settings) -> CinVault:
    return vault_from(settings.cin_keys, settings.cin_index_key, settings.cin_key_file)


def vault_from(keys: str, index_key: str, key_file: Path) -> CinVault:
    """The vault from FSE_CIN_KEYS and FSE_CIN_INDEX_KEY, or from the key file if both unset."""
    if bool(keys.strip()) != bool(index_key.strip()):
        raise CinKeyError("set both FSE_CIN_KEYS and FSE_CIN_INDEX_KEY, or neither (key file)")
    if keys.strip():
        return CinVault(parse_keys(keys), _key_bytes(index_key, "FSE_CIN_INDEX_KEY"))
    stored = orjson.loads(_load_or_create_file(key_file))
    try:
        return CinVault(
            parse_keys(stored["keys"]), _key_bytes(stored["index_key"], f"{key_file} index_key")
        )
    except (KeyError, TypeError):
        expected = "{'keys': 'id:base64,...', 'index_key': 'base64'}"
        raise CinKeyError(f"{key_file}: expected {expected}") from None


def _load_or_create_file(path: Path) -> bytes:
    """The key file; created (mode 600) with random keys if absent. Workers racing agree."""

    def generate() -> bytes:
        keys = {
            "keys": new_key_line(),
            "index_key": base64.b64encode(os.urandom(KEY_BYTES)).decode(),
        }
        return orjson.dumps(keys, option=orjson.OPT_INDENT_2)

    return load_or_create(path, generate)
