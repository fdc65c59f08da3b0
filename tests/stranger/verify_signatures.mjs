// A stranger checks the platform's signatures with Node and the npm `jose` package only.
// Run by tests/test_signatures_elsewhere.py as `node verify_signatures.mjs DATA` (DATA: what
// the platform published over HTTP); the rules are docs/security.md's, "Signatures a stranger
// can check". Exit 0 and one line per signature checked, or an error.
import { readFileSync } from "node:fs";
import * as jose from "jose";

const SIGNING_KEY = "https://fse.cnss.ma/fhir/StructureDefinition/signing-key";

// RFC 8785: JCS is ECMAScript's JSON.stringify with object keys sorted by UTF-16 code units.
function jcs(value) {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${jcs(value[k])}`).join(",")}}`;
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const headerOf = (compact) => JSON.parse(Buffer.from(compact.split(".")[0], "base64url"));

async function signed(compact, content, key) {
  const [protectedHeader, payload, signature] = compact.split(".");
  check(payload === "", "a detached JWS");
  const jws = { protected: protectedHeader, payload: Buffer.from(jcs(content)).toString("base64url"), signature };
  try {
    await jose.flattenedVerify(jws, key, { algorithms: ["ES256"] });
    return true;
  } catch (error) {
    if (error.code === "ERR_JWS_SIGNATURE_VERIFICATION_FAILED") return false;
    throw error;
  }
}

const data = JSON.parse(readFileSync(process.argv[2], "utf8"));
const published = JSON.parse(data.jwks);
for (const jwk of published.keys) {
  check(jwk.kid === (await jose.calculateJwkThumbprint(jwk, "sha256")), `kid is not RFC 7638: ${jwk.kid}`);
}
const keys = jose.createLocalJWKSet(published);

for (const [name, found] of Object.entries(data.provenances)) {
  const provenance = JSON.parse(found.provenance);
  const targets = found.targets.map((text) => JSON.parse(text));
  const versions = targets.map((t) => `${t.resourceType}/${t.id}/_history/${t.meta.versionId}`);
  check(JSON.stringify(versions) === JSON.stringify(provenance.target.map((t) => t.reference)), `${name}: targets`);
  const signature = provenance.signature[0];
  const author = JSON.parse(found.signer);
  check(signature.who.reference === `Practitioner/${author.id}`, `${name}: signer`);
  const jwk = JSON.parse(author.extension.find((e) => e.url === SIGNING_KEY).valueString);
  const kid = await jose.calculateJwkThumbprint(jwk, "sha256");
  const compact = Buffer.from(signature.data, "base64").toString("utf8");
  check(headerOf(compact).kid === kid && headerOf(compact).alg === "ES256", `${name}: header`);
  const content = targets.map(({ meta, ...rest }) => rest);
  const key = await jose.importJWK(jwk, "ES256");
  check(await signed(compact, content, key), `${name}: the signature does not verify`);
  content[0].id += "0";
  check(!(await signed(compact, content, key)), `${name}: a changed resource still verifies`);
  console.log(`${name}: signature valid (${targets.length} resources, kid ${kid})`);
}

const receipt = [JSON.parse(data.receipt.content)];
check(await signed(data.receipt.jws, receipt, keys), "the receipt's signature does not verify");
receipt[0].rembourse_par_cnss = "999.00";
check(!(await signed(data.receipt.jws, receipt, keys)), "a changed receipt still verifies");
console.log(`receipt: signature valid (kid ${headerOf(data.receipt.jws).kid})`);

const { payload, protectedHeader } = await jose.jwtVerify(data.token, keys, {
  algorithms: ["ES256"],
  typ: "at+jwt",
  issuer: data.audience,
  audience: data.audience,
  clockTolerance: 30,
});
console.log(`access token: valid for ${payload.sub} (kid ${protectedHeader.kid})`);
