"""A stranger checks the platform's signatures: joserfc and rfc8785 only, no project code.

Run by tests/test_signatures_elsewhere.py as ``python -I -S verify_signatures.py SITE DATA``:
SITE holds joserfc, rfc8785 and what they need (nothing else), DATA what the platform
published over HTTP (the JWKS, Provenances with their targets and signer, a receipt, a token).
The rules are docs/security.md's, "Signatures a stranger can check". Exit 0 and one line per
signature checked, or a traceback.
"""

import base64
import importlib.util
import json
import sys

sys.path.insert(0, sys.argv[1])
assert importlib.util.find_spec("fse") is None, "the project is importable: not a stranger"
try:
    import fse  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("import fse worked: not a stranger")

import rfc8785  # noqa: E402
from joserfc import jws, jwt  # noqa: E402
from joserfc.errors import BadSignatureError  # noqa: E402
from joserfc.jwk import ECKey, KeySet  # noqa: E402

SIGNING_KEY = "https://fse.cnss.ma/fhir/StructureDefinition/signing-key"
LEEWAY = 30


def header_of(compact: str) -> dict:
    segment = compact.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def signed(compact: str, content: list, key: object) -> bool:
    """Whether ``compact`` (header..signature) signs the JCS bytes of ``content``."""
    assert compact.split(".")[1] == "", "a detached JWS"
    try:
        jws.deserialize_compact(compact, key, ["ES256"], payload=rfc8785.dumps(content))
    except BadSignatureError:
        return False
    return True


with open(sys.argv[2], encoding="utf-8") as handle:
    data = json.load(handle)
published = json.loads(data["jwks"])
for jwk in published["keys"]:
    assert jwk["kid"] == ECKey.import_key(jwk).thumbprint(), f"kid is not RFC 7638: {jwk}"
keys = KeySet.import_key_set(published)

for name, found in data["provenances"].items():
    provenance = json.loads(found["provenance"])
    targets = [json.loads(text) for text in found["targets"]]
    versions = [f"{t['resourceType']}/{t['id']}/_history/{t['meta']['versionId']}" for t in targets]
    assert versions == [t["reference"] for t in provenance["target"]], versions
    signature = provenance["signature"][0]
    author = json.loads(found["signer"])
    assert signature["who"]["reference"] == f"Practitioner/{author['id']}"
    jwk = json.loads(next(e["valueString"] for e in author["extension"] if e["url"] == SIGNING_KEY))
    key = ECKey.import_key(jwk)
    compact = base64.b64decode(signature["data"]).decode()
    assert header_of(compact) == {"alg": "ES256", "kid": key.thumbprint()}, header_of(compact)
    content = [{k: v for k, v in t.items() if k != "meta"} for t in targets]
    assert signed(compact, content, key), f"{name}: the signature does not verify"
    content[0]["id"] += "0"
    assert not signed(compact, content, key), f"{name}: a changed resource still verifies"
    print(f"{name}: signature valid ({len(targets)} resources, kid {key.thumbprint()})")

receipt = [json.loads(data["receipt"]["content"])]
compact = data["receipt"]["jws"]
assert signed(compact, receipt, keys), "the receipt's signature does not verify"
receipt[0]["rembourse_par_cnss"] = "999.00"
assert not signed(compact, receipt, keys), "a changed receipt still verifies"
print(f"receipt: signature valid (kid {header_of(compact)['kid']})")

token = jwt.decode(data["token"], keys, ["ES256"])
assert token.header["typ"] == "at+jwt", token.header
audience = data["audience"]
jwt.JWTClaimsRegistry(
    leeway=LEEWAY,
    exp={"essential": True},
    iss={"essential": True, "value": audience},
    aud={"essential": True, "value": audience},
).validate(token.claims)
print(f"access token: valid for {token.claims['sub']} (kid {token.header['kid']})")
