"""Professionals' signing keys: sealed under their password, public key on their Practitioner."""

from __future__ import annotations

import base64
import uuid

import httpx
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fse.accounts import create_account
from fse.crypto.signing import SIGNING_KEY_EXTENSION, new_signing_key, unseal
from fse.security.users import Role, unlock_signing_key
from tests.builders import create, practitioner
from tests.conftest import Platform

PASSWORD = "a-long-enough-password"


def public_key(jwk: dict[str, str]) -> ec.EllipticCurvePublicKey:
    def number(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    return ec.EllipticCurvePublicNumbers(
        number(jwk["x"]), number(jwk["y"]), ec.SECP256R1()
    ).public_key()


def test_sealed_key_opens_only_with_the_password() -> None:
    sealed = new_signing_key(PASSWORD)
    opened = unseal(sealed.sealed, PASSWORD)
    assert opened is not None and opened.jwk() == sealed.public_jwk
    assert unseal(sealed.sealed, "another-password-x") is None
    der = opened.private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert base64.b64encode(der).decode()[:40] not in sealed.sealed


async def test_prescriber_account_publishes_a_key_that_verifies_their_signature(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    doctor = await create(client, practitioner(inpe="100000035"))
    username = f"dr.{uuid.uuid4().hex[:8]}"
    user = await create_account(
        platform.app.state.fhir,
        username,
        PASSWORD,
        Role.PRESCRIBER,
        "Dr Test",
        f"Practitioner/{doctor['id']}",
    )
    published = (await client.get(f"/fhir/Practitioner/{doctor['id']}")).json()
    assert published["meta"]["versionId"] == "2"
    extension = next(e for e in published["extension"] if e["url"] == SIGNING_KEY_EXTENSION)
    jwk = orjson.loads(extension["valueString"])
    assert jwk == user.signing_jwk and "d" not in jwk  # public part only

    key = await unlock_signing_key(platform.engine, username, PASSWORD)
    assert key is not None
    document = b"prescription RX-2026-000001"
    signature = key.private.sign(document, ec.ECDSA(hashes.SHA256()))
    public_key(jwk).verify(signature, document, ec.ECDSA(hashes.SHA256()))
    assert await unlock_signing_key(platform.engine, username, "wrong-password-x") is None


async def test_cnss_agents_get_no_signing_key(platform: Platform) -> None:
    username = f"agent.{uuid.uuid4().hex[:8]}"
    user = await create_account(
        platform.app.state.fhir, username, PASSWORD, Role.CNSS_AGENT, "Agent"
    )
    assert user.signing_jwk is None
    assert await unlock_signing_key(platform.engine, username, PASSWORD) is None
