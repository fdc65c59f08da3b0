"""Per-professional signing keys: a P-256 pair per doctor, pharmacist or lab user.

The private key is stored encrypted with AES-256-GCM under a key derived from the user's password
(scrypt), so neither a database dump nor the platform alone can sign in their name; the public
key is published on their Practitioner (extension ``signing-key``, a JWK) for anyone to verify.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from fhir_profiles.systems import SIGNING_KEY_EXTENSION
from fse.crypto.tokens import SigningKey

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _kek(password: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(
        password.encode()
    )


@dataclass(frozen=True)
class SealedKey:
    """What the database keeps: the encrypted private key and the public JWK."""

    sealed: str
    public_jwk: dict[str, str]


def new_signing_key(password: str) -> SealedKey:
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    return SealedKey(_seal(key, password), key.jwk())


def _seal(key: SigningKey, password: str) -> str:
    der = key.private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, nonce = os.urandom(16), os.urandom(12)
    ciphertext = AESGCM(_kek(password, salt)).encrypt(nonce, der, b"fse-signing-key")
    return orjson.dumps(
        {
            "kdf": "scrypt",
            "n": SCRYPT_N,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "salt": _b64(salt),
            "nonce": _b64(nonce),
            "ciphertext": _b64(ciphertext),
        }
    ).decode()


def reseal(sealed: str, password: str, new_password: str) -> str | None:
    """The same private key sealed under ``new_password`` (a fresh salt and nonce), or None
    when ``password`` does not open it. The key itself does not change: what it signed still
    verifies with the public key published on the Practitioner."""
    key = unseal(sealed, password)
    return _seal(key, new_password) if key is not None else None


def unseal(sealed: str, password: str) -> SigningKey | None:
    """The private key, or None when the password is not the one it was sealed with."""
    box: dict[str, Any] = orjson.loads(sealed)
    kek = Scrypt(
        salt=base64.b64decode(box["salt"]), length=32, n=box["n"], r=box["r"], p=box["p"]
    ).derive(password.encode())
    return _opened(kek, box, b"fse-signing-key")


def with_public_key(practitioner: dict[str, Any], jwk: dict[str, str]) -> dict[str, Any]:
    """The Practitioner with its signing-key extension set to ``jwk`` (replacing an older one)."""
    others = [e for e in practitioner.get("extension", []) if e.get("url") != SIGNING_KEY_EXTENSION]
    extension = {"url": SIGNING_KEY_EXTENSION, "valueString": orjson.dumps(jwk).decode()}
    return {**practitioner, "extension": [*others, extension]}


def _session_kek(session_token: str) -> bytes:
    """A key only the browser's session cookie can rebuild (the cookie is 256 random bits, so
    HKDF suffices where a password needs scrypt)."""
    return HKDF(hashes.SHA256(), 32, salt=None, info=b"fse-session-signing-key").derive(
        session_token.encode()
    )


def seal_for_session(key: SigningKey, session_token: str) -> str:
    """The private key, re-sealed for one session: the server can use it only while the
    browser presents that session's cookie, and it dies with the session row."""
    der = key.private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    nonce = os.urandom(12)
    ciphertext = AESGCM(_session_kek(session_token)).encrypt(nonce, der, b"fse-session-key")
    return orjson.dumps({"nonce": _b64(nonce), "ciphertext": _b64(ciphertext)}).decode()


def unseal_for_session(sealed: str, session_token: str) -> SigningKey | None:
    return _opened(_session_kek(session_token), orjson.loads(sealed), b"fse-session-key")


def _opened(kek: bytes, box: dict[str, Any], purpose: bytes) -> SigningKey | None:
    """The private key sealed in ``box`` (AES-256-GCM under ``kek``, ``purpose`` as associated
    data), or None when ``kek`` is not the one it was sealed with."""
    try:
        der = AESGCM(kek).decrypt(
            base64.b64decode(box["nonce"]), base64.b64decode(box["ciphertext"]), purpose
        )
    except InvalidTag:
        return None
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return SigningKey(key)
