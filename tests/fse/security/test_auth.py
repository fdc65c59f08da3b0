"""Every FHIR interaction is authenticated and allowed by the token's scopes (401/403), and the
token endpoint follows OAuth2 client credentials."""

from __future__ import annotations

import base64
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from fse.crypto import jose
from fse.crypto.tokens import issue, load_or_create_key
from fse.errors import ErrorCode
from fse.security.clients import create_client, find_client, revoke_client
from tests.builders import FHIR_JSON, claim, create, patient
from tests.conftest import Platform
from tests.fse.fhir_api.test_errors import assert_outcome


@pytest.fixture
async def anonymous(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no token (each test adds the Authorization it means to test)."""
    await platform.truncate()
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_client(platform: Platform, scopes: str) -> tuple[str, str]:
    client, secret = await create_client(platform.engine, f"c-{os.urandom(4).hex()}", scopes)
    return client.client_id, secret


async def token_via_endpoint(
    http: httpx.AsyncClient, client_id: str, secret: str, **form: str
) -> httpx.Response:
    return await http.post(
        "/auth/token", data={"grant_type": "client_credentials", **form}, auth=(client_id, secret)
    )


async def test_no_token_is_401_and_stores_nothing(
    anonymous: httpx.AsyncClient, platform: Platform
) -> None:
    before = await platform.row_counts()
    for response in (
        await anonymous.get("/fhir/Patient"),
        await anonymous.post("/fhir/Patient", json=patient(), headers=FHIR_JSON),
        await anonymous.get("/fhir/Patient/x", headers={"Authorization": "Basic abc"}),
    ):
        assert_outcome(response, 401, ErrorCode.UNAUTHENTICATED)
        assert response.headers["www-authenticate"].startswith('Bearer realm="fse"')
    assert await platform.row_counts() == before


async def test_capability_statement_and_discovery_are_public(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/fhir/metadata")).status_code == 200
    smart = (await anonymous.get("/.well-known/smart-configuration")).json()
    assert smart["token_endpoint"] == "http://test/auth/token"
    assert "client_credentials" in smart["grant_types_supported"]


async def test_forged_expired_or_foreign_tokens_are_401(
    anonymous: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    audience = platform.settings.token_audience
    claims = {"iss": audience, "aud": audience, "sub": "fse-x", "scope": "system/*.cruds"}
    other_key = load_or_create_key(tmp_path / "other.pem")
    key = platform.app.state.signing_key
    expired = issue(key, claims, ttl_seconds=-jose.CLOCK_LEEWAY_SECONDS - 1)
    foreign = issue(key, {**claims, "aud": "urn:other"}, 60)
    now = int(time.time())
    # signed by the platform's key, valid but for its type: an ID token is not an access token
    id_token = jose.encode_jwt(key.ec_key, "JWT", {**claims, "iat": now, "exp": now + 60})
    valid = platform.token
    tampered = valid.rsplit(".", 1)[0][:-2] + "xx." + valid.rsplit(".", 1)[1]
    for token, reason in (
        (issue(other_key, claims, 60), "not signed by this platform"),
        (expired, "expired"),
        (foreign, "another audience"),
        (id_token, "not an access token"),
        ("abc.def", "malformed"),
        (tampered, ""),
    ):
        response = await anonymous.get("/fhir/Patient", headers=bearer(token))
        assert_outcome(response, 401, ErrorCode.UNAUTHENTICATED)
        assert reason in response.headers["www-authenticate"]


async def test_client_credentials_to_a_working_token(
    anonymous: httpx.AsyncClient, platform: Platform
) -> None:
    client_id, secret = await new_client(platform, "system/Patient.rs system/Claim.rs")
    basic = await token_via_endpoint(anonymous, client_id, secret)
    assert basic.status_code == 200
    assert basic.headers["cache-control"] == "no-store"
    body = basic.json()
    assert body["token_type"] == "bearer" and body["scope"] == "system/Patient.rs system/Claim.rs"
    # The claims RFC 9068 requires of a JWT access token, client_id among them.
    payload = body["access_token"].split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert {"iss", "exp", "aud", "sub", "client_id", "iat", "jti"} <= set(claims)
    assert claims["client_id"] == claims["sub"] == client_id
    posted = await anonymous.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert posted.status_code == 200
    assert (
        await anonymous.get("/fhir/Patient", headers=bearer(body["access_token"]))
    ).status_code == 200


async def test_token_endpoint_errors(anonymous: httpx.AsyncClient, platform: Platform) -> None:
    client_id, secret = await new_client(platform, "system/Patient.rs")
    cases = [
        (await token_via_endpoint(anonymous, client_id, "wrong"), 401, "invalid_client"),
        (await token_via_endpoint(anonymous, "fse-unknown", secret), 401, "invalid_client"),
        (
            await anonymous.post("/auth/token", data={"grant_type": "client_credentials"}),
            401,
            "invalid_client",
        ),
        (
            await anonymous.post(
                "/auth/token", data={"grant_type": "password"}, auth=(client_id, secret)
            ),
            400,
            "unsupported_grant_type",
        ),
        (  # a secret sent as bytes that are not UTF-8 is refused, not checked as U+FFFD
            await anonymous.post(
                "/auth/token",
                content=f"grant_type=client_credentials&client_id={client_id}&client_secret=%FF",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            400,
            "invalid_request",
        ),
        (
            await anonymous.post(
                "/auth/token",
                content=b"grant_type=client_credentials&client_secret=\xff",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                auth=(client_id, secret),
            ),
            400,
            "invalid_request",
        ),
        (
            await token_via_endpoint(anonymous, client_id, secret, scope="system/Patient.c"),
            400,
            "invalid_scope",
        ),
        (
            await token_via_endpoint(anonymous, client_id, secret, scope="system/Patient.zz"),
            400,
            "invalid_scope",
        ),
    ]
    for response, status, error in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"] == error


async def test_scopes_decide_each_interaction(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, platform: Platform
) -> None:
    owner = await create(client, patient())
    reader = bearer(platform.token_for(_sub(platform.token), "system/Patient.rs"))
    before = await platform.row_counts()
    assert (await anonymous.get(f"/fhir/Patient/{owner['id']}", headers=reader)).status_code == 200
    assert (await anonymous.get("/fhir/Patient", headers=reader)).status_code == 200
    denied = [
        await anonymous.post(
            "/fhir/Patient",
            json=patient(immat="222222222", cin="A2"),
            headers={**reader, **FHIR_JSON},
        ),
        await anonymous.put(
            f"/fhir/Patient/{owner['id']}", json=owner, headers={**reader, **FHIR_JSON}
        ),
        await anonymous.delete(f"/fhir/Patient/{owner['id']}", headers=reader),
        await anonymous.get("/fhir/Claim", headers=reader),
        await anonymous.get(
            "/fhir/Patient", params={"_revinclude": "Claim:patient"}, headers=reader
        ),
        await anonymous.post(
            "/fhir/Claim/$validate", json=claim("Patient/x"), headers={**reader, **FHIR_JSON}
        ),
    ]
    for response in denied:
        assert_outcome(response, 403, ErrorCode.FORBIDDEN)
    assert "system/Patient.c" in denied[0].json()["issue"][0]["expression"]
    assert await platform.row_counts() == before


async def test_each_transaction_entry_needs_its_scope(
    anonymous: httpx.AsyncClient, platform: Platform
) -> None:
    creator = bearer(platform.token_for(_sub(platform.token), "system/Patient.c"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {"resource": claim("Patient/x"), "request": {"method": "POST", "url": "Claim"}},
        ],
    }
    before = await platform.row_counts()
    response = await anonymous.post("/fhir", json=bundle, headers={**creator, **FHIR_JSON})
    assert_outcome(response, 403, ErrorCode.FORBIDDEN, "Bundle.entry[1].request.system/Claim.c")
    assert await platform.row_counts() == before


async def test_revoked_client_loses_access(
    anonymous: httpx.AsyncClient, platform: Platform
) -> None:
    client_id, secret = await new_client(platform, "system/Patient.rs")
    token = (await token_via_endpoint(anonymous, client_id, secret)).json()["access_token"]
    assert (await anonymous.get("/fhir/Patient", headers=bearer(token))).status_code == 200
    revoked = await revoke_client(platform.engine, (await _name_of(platform, client_id)))
    assert revoked is not None
    await platform.app.state.authenticator.forget(client_id)
    response = await anonymous.get("/fhir/Patient", headers=bearer(token))
    assert_outcome(response, 401, ErrorCode.UNAUTHENTICATED)
    assert "revoked" in response.headers["www-authenticate"]
    assert (await token_via_endpoint(anonymous, client_id, secret)).status_code == 401


async def test_tokens_verify_with_the_published_jwks(
    anonymous: httpx.AsyncClient, platform: Platform
) -> None:
    jwk = (await anonymous.get("/.well-known/jwks.json")).json()["keys"][0]
    header_b64, payload_b64, signature_b64 = platform.token.split(".")

    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(unb64(jwk["x"]), "big"),
        int.from_bytes(unb64(jwk["y"]), "big"),
        ec.SECP256R1(),
    ).public_key()
    signature = unb64(signature_b64)
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public.verify(der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    assert orjson.loads(unb64(header_b64))["kid"] == jwk["kid"]


def test_signing_key_file_is_private_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    first, second = load_or_create_key(path), load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.kid == second.kid


def _sub(token: str) -> str:
    payload = token.split(".")[1]
    return orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


async def _name_of(platform: Platform, client_id: str) -> str:
    found = await find_client(platform.engine, client_id)
    assert found is not None
    return found[0].name
