"""Professionals sign what they write: a Provenance carrying a detached JWS (ES256) over the
canonical JSON of the resources it names, verifiable by anyone with the public key published on
the signer's Practitioner.

Canonical form: each target resource without ``meta`` (the server stamps it), keys sorted, no
whitespace, UTF-8 (orjson), every number with a fraction as the double nearest to it (orjson's
shortest form: ``150.00`` is signed as ``150.0``); the payload is the JSON array of those, in
target order.
"""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from fse.security.tokens import SigningKey

AUTHOR_SIGNATURE = {
    "system": "urn:iso-astm:E1762-95:2013",
    "code": "1.2.840.10065.1.12.1.1",
    "display": "Author's Signature",
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _as_parsed(value: Any) -> int | float:
    """A Decimal in the signed bytes as a JSON parser reads its text: a whole number written
    without a point (``2``) as an integer, any other (``150.00``, ``1E+2``) as the double
    nearest to it (``150.0``)."""
    if isinstance(value, Decimal) and value.is_finite():
        return int(value) if value.as_tuple().exponent == 0 else float(value)
    raise TypeError(f"{value!r} cannot be signed")


def canonical(resources: list[dict[str, Any]]) -> bytes:
    """The signed bytes. Numbers are signed as doubles: the resource as the platform holds it
    (decimals exact, ``150.00``), as a client reads it back (a JSON parser's double, 150.0) and
    as signed before decimals were kept exact all give the same bytes."""
    return orjson.dumps(
        [{k: v for k, v in r.items() if k != "meta"} for r in resources],
        default=_as_parsed,
        option=orjson.OPT_SORT_KEYS,
    )


def sign(key: SigningKey, resources: list[dict[str, Any]]) -> str:
    """Compact JWS with detached payload: ``header..signature``."""
    header = _b64url(orjson.dumps({"alg": "ES256", "kid": key.kid}))
    signing_input = f"{header}.{_b64url(canonical(resources))}".encode()
    r, s = decode_dss_signature(key.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return f"{header}..{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def public_key(jwk: dict[str, str]) -> ec.EllipticCurvePublicKey:
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_unb64url(jwk["x"]), "big"),
        int.from_bytes(_unb64url(jwk["y"]), "big"),
        ec.SECP256R1(),
    )
    return numbers.public_key()


def verify(jwk: dict[str, str], jws: str, resources: list[dict[str, Any]]) -> bool:
    try:
        header, empty, signature = jws.split(".")
        raw = _unb64url(signature)
    except ValueError:
        return False
    if empty or len(raw) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    signing_input = f"{header}.{_b64url(canonical(resources))}".encode()
    try:
        public_key(jwk).verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def provenance(
    key: SigningKey,
    signer: str,
    resources: list[dict[str, Any]],
    when: datetime,
    activity: str = "CREATE",
    version: int = 1,
) -> dict[str, Any]:
    """A Provenance naming each resource at the signed version (``Type/id/_history/1``: the
    resources are new), signed by ``signer``."""
    moment = when.isoformat(timespec="seconds")
    return {
        "resourceType": "Provenance",
        "target": [
            {"reference": f"{r['resourceType']}/{r['id']}/_history/{version}"} for r in resources
        ],
        "recorded": moment,
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": activity,
                }
            ]
        },
        "agent": [{"who": {"reference": signer}}],
        "signature": [
            {
                "type": [AUTHOR_SIGNATURE],
                "when": moment,
                "who": {"reference": signer},
                "sigFormat": "application/jose",
                "targetFormat": "application/fhir+json",
                "data": base64.b64encode(sign(key, resources).encode()).decode(),
            }
        ],
    }


def jws_of(provenance_resource: dict[str, Any]) -> str:
    return base64.b64decode(provenance_resource["signature"][0]["data"]).decode()
