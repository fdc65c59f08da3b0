"""argon2 password hashing, shared by user passwords and system-client secrets.

A check costs ~50 ms of CPU: async callers run it in a thread (``asyncio.to_thread``), so one
login does not stall every other request of the worker (argon2 releases the GIL)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

HASHER = PasswordHasher()
# Checked when the account does not exist, so a failure takes the same time either way.
DUMMY_HASH = HASHER.hash("no-such-account")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def password_matches(stored_hash: str | None, password: str) -> bool:
    try:
        return HASHER.verify(stored_hash or DUMMY_HASH, password) and stored_hash is not None
    except VerificationError:
        return False
