"""Access tokens as RFC 9068 and RFC 7638 say: typ ``at+jwt``, key ids any JOSE library can
recompute, and a small clock leeway on exp, nbf and iat."""

from __future__ import annotations

import base64
import hashlib
import json

import orjson
import pytest

from fse.crypto import jose
from fse.crypto.tokens import InvalidToken, issue, new_key, verify

AUDIENCE = "https://fse.cnss.ma"
CLAIMS = {"iss": AUDIENCE, "aud": AUDIENCE, "sub": "client-1", "scope": "system/*.rs"}
T0 = 1_800_000_000
LEEWAY = jose.CLOCK_LEEWAY_SECONDS


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_kid_is_the_rfc7638_thumbprint_of_the_published_jwk() -> None:
    key = new_key()
    jwk = key.jwk()
    # RFC 7638 section 3: the required members only, in lexicographic order, no whitespace
    members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest()
    assert jwk["kid"] == key.kid == b64url(digest)
    assert len(key.kid) == 43 and "d" not in jwk
    token = issue(key, CLAIMS, 60, now=T0)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}


def test_exp_allows_the_clock_leeway_and_no_more() -> None:
    key = new_key()
    token = issue(key, CLAIMS, 60, now=T0)
    assert verify(key, token, AUDIENCE, AUDIENCE, now=T0 + 60 + LEEWAY - 1)["sub"] == "client-1"
    with pytest.raises(InvalidToken, match="token expired"):
        verify(key, token, AUDIENCE, AUDIENCE, now=T0 + 60 + LEEWAY)


def test_a_token_from_a_clock_ahead_is_taken_within_the_leeway() -> None:
    key = new_key()
    ahead = issue(key, CLAIMS, 600, now=T0 + LEEWAY)  # the issuer's clock is 30 s ahead
    assert verify(key, ahead, AUDIENCE, AUDIENCE, now=T0)["sub"] == "client-1"
    too_far = issue(key, CLAIMS, 600, now=T0 + LEEWAY + 1)
    with pytest.raises(InvalidToken, match="issued in the future"):
        verify(key, too_far, AUDIENCE, AUDIENCE, now=T0)
    not_yet = jose.encode_jwt(
        key.ec_key, "at+jwt", {**CLAIMS, "exp": T0 + 600, "nbf": T0 + LEEWAY + 1}
    )
    with pytest.raises(InvalidToken, match="not yet valid"):
        verify(key, not_yet, AUDIENCE, AUDIENCE, now=T0)


@pytest.mark.parametrize("typ", ["JWT", "at+JWT ", None])
def test_only_an_access_token_type_is_taken(typ: str | None) -> None:
    key = new_key()
    claims = {**CLAIMS, "iat": T0, "exp": T0 + 60}
    header = {"alg": "ES256", "kid": key.kid} | ({"typ": typ} if typ else {})
    token = jose.sign_compact(key.ec_key, header, orjson.dumps(claims))
    with pytest.raises(InvalidToken, match="not an access token"):
        verify(key, token, AUDIENCE, AUDIENCE, now=T0)
    media_type = jose.encode_jwt(key.ec_key, "application/at+jwt", claims)
    assert verify(key, media_type, AUDIENCE, AUDIENCE, now=T0)["sub"] == "client-1"


def test_alg_none_or_another_alg_is_refused() -> None:
    key = new_key()
    claims = b64url(orjson.dumps({**CLAIMS, "iat": T0, "exp": T0 + 60}))
    for alg in ("none", "HS256", "ES384"):
        header = b64url(orjson.dumps({"alg": alg, "typ": "at+jwt", "kid": key.kid}))
        with pytest.raises(InvalidToken, match="not signed by this platform"):
            verify(key, f"{header}.{claims}.", AUDIENCE, AUDIENCE, now=T0)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c",
        "....",
        "eyJ9.e30.",
        "\udcff.e30.x",
        "e30.e30.e30",
        "ImFsZyI.e30.AAAA",  # the header "alg": JSON, not an object
        "WyJhbGciXQ.e30.AAAA",  # ["alg"]
    ],
)
def test_malformed_tokens_are_refused_with_a_reason(token: str) -> None:
    with pytest.raises(InvalidToken):
        verify(new_key(), token, AUDIENCE, AUDIENCE, now=T0)


def test_a_stored_jwk_gets_the_rfc_7638_thumbprint_joserfc_computes() -> None:
    """The kid recomputed on every signed-in request is hashed from the JWK's members: it must
    be the thumbprint the JOSE library gives for the same key, whatever kid was stored."""
    from joserfc.jwk import ECKey

    for _ in range(5):
        stored = {**new_key().jwk(), "kid": "home-made-16char"}
        expected = ECKey.import_key({k: v for k, v in stored.items() if k != "kid"}).thumbprint()
        assert jose.with_thumbprint(stored)["kid"] == expected
