"""Access tokens: compact JWS (RFC 7515) signed ES256 with the platform's P-256 key.

Short-lived (minutes), so revoking a client stops it within a token lifetime; verification needs
only the public key, published as a JWK Set for other CNSS systems. The key that signs, and the
ones still accepted after a rotation, are the key ring's (``fse/crypto/key_ring.py``).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from fse.crypto.key_files import load_or_create


class InvalidToken(Exception):
    """The token is malformed, badly signed, expired or for someone else."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SigningKey:
    private: ec.EllipticCurvePrivateKey

    @property
    def kid(self) -> str:
        numbers = self.private.public_key().public_numbers()
        digest = hashes.Hash(hashes.SHA256())
        digest.update(numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big"))
        return _b64(digest.finalize())[:16]

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
            "use": "sig",
            "alg": "ES256",
            "kid": self.kid,
        }

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
    header = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"
    der = key.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{_b64(signature)}"


def header_kid(token: str) -> str:
    """The kid of a token ``verify`` accepted."""
    return str(orjson.loads(_unb64(token.split(".", 1)[0]))["kid"])


def verify(
    keys: SigningKey | KeyLookup,
    token: str,
    issuer: str,
    audience: str,
    now: float | None = None,
) -> dict[str, Any]:
    """The token's claims, or InvalidToken saying why not. ``keys``: the one key, or the key
    ring's lookup by kid (the current key and those retired less than a token lifetime ago)."""
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = orjson.loads(_unb64(header_b64))
        signature = _unb64(signature_b64)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(header, dict):
        raise InvalidToken("malformed token")
    kid, key = header.get("kid"), None
    if isinstance(kid, str):
        key = (keys if kid == keys.kid else None) if isinstance(keys, SigningKey) else keys(kid)
    if header.get("alg") != "ES256" or key is None or len(signature) != 64:
        raise InvalidToken("token not signed by this platform (unknown or retired key)")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        key.private.public_key().verify(
            der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature as exc:
        raise InvalidToken("bad signature") from exc
    claims = orjson.loads(_unb64(payload_b64))
    if claims.get("exp", 0) <= (time.time() if now is None else now):
        raise InvalidToken("token expired")
    if claims.get("iss") != issuer or claims.get("aud") != audience:
        raise InvalidToken("token issued for another audience")
    return claims
