"""Access tokens: JWTs (RFC 9068 profile, ``typ`` ``at+jwt``) signed ES256 with the platform's
P-256 key, through ``fse.crypto.jose``.

Short-lived (minutes), so revoking a client stops it within a token lifetime; verification needs
only the public key, published as a JWK Set for other CNSS systems, each key named by its RFC 7638
thumbprint. The key that signs, and the ones still accepted after a rotation, are the key ring's
(``fse/crypto/key_ring.py``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fse.crypto import jose
from fse.crypto.key_files import load_or_create

TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
"""The ``typ`` an access token must carry (RFC 9068 section 4): an ID token or any other JWT
signed by the same key is not an access token."""


class InvalidToken(Exception):
    """The token is malformed, badly signed, expired or for someone else."""


@dataclass(frozen=True)
class SigningKey:
    private: ec.EllipticCurvePrivateKey

    @cached_property
    def ec_key(self) -> jose.ECKey:
        """The key as joserfc takes it (built once: tokens are checked on every request)."""
        return jose.jose_key(self.private)

    @cached_property
    def kid(self) -> str:
        """The RFC 7638 thumbprint of the public key: anyone can recompute it from the JWK."""
        return jose.thumbprint(self.ec_key)

    def jwk(self) -> dict[str, str]:
        return jose.public_jwk(self.ec_key)

    def pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def new_key() -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()))


def key_from_pem(pem: bytes, where: str) -> SigningKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{where} is not a P-256 private key")
    return SigningKey(key)


def load_or_create_key(path: Path) -> SigningKey:
    """The PEM key at ``path``; created (mode 600) if absent. Workers racing here agree on one."""
    return key_from_pem(load_or_create(path, lambda: new_key().pem()), str(path))


KeyLookup = Callable[[str], SigningKey | None]
"""The key a token's ``kid`` names, if it is one this platform accepts now."""


def issue(
    key: SigningKey, claims: dict[str, Any], ttl_seconds: int, now: float | None = None
) -> str:
    issued = int(time.time() if now is None else now)
    payload = {**claims, "iat": issued, "exp": issued + ttl_seconds, "jti": str(uuid.uuid4())}
    return jose.encode_jwt(key.ec_key, "at+jwt", payload)


def header_kid(token: str) -> str:
    """The kid of a token ``verify`` accepted."""
    return str(jose.header_of(token)["kid"])


def verify(
    keys: SigningKey | KeyLookup,
    token: str,
    issuer: str,
    audience: str,
    now: float | None = None,
) -> dict[str, Any]:
    """The token's claims, or InvalidToken saying why not. ``keys``: the one key, or the key
    ring's lookup by kid (the current key and those retired less than a token lifetime ago).
    ``exp``, ``nbf`` and ``iat`` allow ``jose.CLOCK_LEEWAY_SECONDS`` of clock difference."""

    def find(kid: str) -> jose.ECKey | None:
        if isinstance(keys, SigningKey):
            return keys.ec_key if kid == keys.kid else None
        found = keys(kid)
        return found.ec_key if found is not None else None

    try:
        _, claims = jose.decode_jwt(find, token, TOKEN_TYPES, issuer, audience, now)
    except jose.Refused as exc:
        raise InvalidToken(str(exc)) from exc
    return claims
