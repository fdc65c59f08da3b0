"""The care sheet's access code: six digits printed on the patient's copy that a pharmacy can be
required to type with the CIN, as proof that the insured (or someone they gave the copy) is there.

Derived, not stored: HMAC-SHA256 of the sheet number under a key derived (HKDF) from the
platform's signing key, so every server sharing that key prints and checks the same code and a
database dump reveals none.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fse.crypto.tokens import SigningKey

DIGITS = 6


def _secret(key: SigningKey) -> bytes:
    private = key.private.private_numbers().private_value.to_bytes(32, "big")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"fse access code v1")
    return hkdf.derive(private)


def access_code(key: SigningKey, sheet_number: str) -> str:
    digest = hmac.new(_secret(key), sheet_number.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**DIGITS:0{DIGITS}d}"


def code_matches(key: SigningKey, sheet_number: str | None, typed: str) -> bool:
    typed = typed.strip().replace(" ", "")
    if not sheet_number or len(typed) != DIGITS:
        return False
    return hmac.compare_digest(access_code(key, sheet_number), typed)
