"""A professional's signature over what they wrote: verifiable, and broken by any change."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec

from fse.crypto.provenance import jws_of, provenance, verify
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
