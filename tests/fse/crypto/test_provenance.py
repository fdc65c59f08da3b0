"""A professional's signature over what they wrote: verifiable, and broken by any change."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from fse.crypto.provenance import canonical, jws_of, provenance, verify
from fse.crypto.tokens import SigningKey
from fse.resources import validation_issues


def resources() -> list[dict]:
    return [
        {"resourceType": "Claim", "id": "c1", "meta": {"versionId": "1"}, "total": {"value": 56.0}},
        {"resourceType": "MedicationRequest", "id": "m1", "status": "active"},
    ]


def test_a_signature_verifies_with_the_public_key_and_ignores_meta() -> None:
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    signed = provenance(key, "Practitioner/p1", resources(), datetime(2026, 11, 22, tzinfo=UTC))
    assert [t["reference"] for t in signed["target"]] == [
        "Claim/c1/_history/1",
        "MedicationRequest/m1/_history/1",
    ]
    stored = resources()
    stored[0]["meta"] = {"versionId": "1", "lastUpdated": "2026-11-22T10:00:00Z"}
    assert verify(key.jwk(), jws_of(signed), stored)


def test_any_change_or_another_key_breaks_it() -> None:
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    jws = jws_of(provenance(key, "Practitioner/p1", resources(), datetime.now(UTC)))
    changed = resources()
    changed[0]["total"]["value"] = 65.0
    assert not verify(key.jwk(), jws, changed)
    other = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    assert not verify(other.jwk(), jws, resources())
    assert not verify(key.jwk(), "garbage", resources())


def test_the_provenance_is_valid_fhir() -> None:
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    signed = provenance(key, "Practitioner/p1", resources(), datetime.now(UTC))
    assert validation_issues(signed) == []


def test_the_signed_bytes_are_rfc8785_whatever_the_number_type() -> None:
    """JCS writes numbers as doubles: the Decimal the platform builds, the exact ``150.00`` it
    stores and the float a JSON parser reads back are one number, so one signature."""
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    built = [{"resourceType": "Claim", "id": "c1", "total": {"value": Decimal("150.00")}}]
    jws = jws_of(provenance(key, "Practitioner/p1", built, datetime.now(UTC)))
    stored = b'[{"total":{"value":150.00},"resourceType":"Claim","id":"c1","meta":{}}]'
    assert (
        canonical(orjson.loads(stored))
        == b'[{"id":"c1","resourceType":"Claim","total":{"value":150}}]'
    )
    assert verify(key.jwk(), jws, orjson.loads(stored))
    assert verify(key.jwk(), jws, [{**built[0], "total": {"value": 150}}])
    assert not verify(key.jwk(), jws, [{**built[0], "total": {"value": Decimal("150.01")}}])
    header = orjson.loads(base64.urlsafe_b64decode(jws.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "kid": key.kid}


def test_content_jcs_cannot_write_is_not_signed_and_does_not_verify() -> None:
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    huge = [{"resourceType": "Claim", "id": "c1", "n": 2**60}]
    with pytest.raises(ValueError):
        provenance(key, "Practitioner/p1", huge, datetime.now(UTC))
    jws = jws_of(provenance(key, "Practitioner/p1", resources(), datetime.now(UTC)))
    assert not verify(key.jwk(), jws, huge)
    assert not verify({"kty": "EC"}, jws, resources())  # a broken published key
    for header in ("ImFsZyI", "WyJhbGciXQ", "e30", "!"):  # "alg", ["alg"], {}, not base64
        assert not verify(key.jwk(), f"{header}..{jws.split('.')[2]}", resources())


def test_a_signature_made_before_jcs_still_verifies() -> None:
    """Before RFC 8785 the bytes were orjson's with sorted keys (``56.0`` where JCS writes
    ``56``) and the kid 16 characters: such a signature, in a database from then, stays valid."""
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    header = base64.urlsafe_b64encode(orjson.dumps({"alg": "ES256", "kid": "k" * 16})).rstrip(b"=")
    old_bytes = orjson.dumps(
        [{k: v for k, v in r.items() if k != "meta"} for r in resources()],
        option=orjson.OPT_SORT_KEYS,
    )
    assert b'"value":56.0' in old_bytes
    signing_input = header + b"." + base64.urlsafe_b64encode(old_bytes).rstrip(b"=")
    r, s = decode_dss_signature(key.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    signature = base64.urlsafe_b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    old = f"{header.decode()}..{signature.rstrip(b'=').decode()}"
    assert verify(key.jwk(), old, resources())
    changed = resources()
    changed[0]["total"]["value"] = 65.0
    assert not verify(key.jwk(), old, changed)
