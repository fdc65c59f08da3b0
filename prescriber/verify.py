"""Anyone can check a care sheet's signature: the Provenance names each resource at the
version signed, and the signer's Practitioner publishes the public key."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from fse.fhir_api.interactions import FhirService
from fse.resources import name_of
from fse.security.provenance import jws_of, verify
from fse.security.signing import SIGNING_KEY_EXTENSION
from prescriber.history import SID
from reimbursement.context import search


@dataclass(frozen=True)
class Verdict:
    valid: bool
    message: str


async def verify_sheet(fhir: FhirService, number: str) -> Verdict:
    async with fhir.store.snapshot() as conn:
        encounters = await search(
            fhir, conn, "Encounter", [("identifier", f"{SID}/consultation|{number}")]
        )
        if not encounters:
            return Verdict(False, f"aucune feuille de soins {number}")
        signed = await search(
            fhir, conn, "Provenance", [("target", f"Encounter/{encounters[0]['id']}")]
        )
        if not signed:
            return Verdict(False, f"la feuille {number} n'a pas de signature (Provenance)")
        provenance = signed[0]
        signer = provenance["signature"][0]["who"]["reference"]
        rtype, _, rid = signer.partition("/")
        author = orjson.loads((await fhir.store.read(conn, rtype, rid)).content or "{}")
        jwk = next(
            (
                orjson.loads(e["valueString"])
                for e in author.get("extension", [])
                if e.get("url") == SIGNING_KEY_EXTENSION
            ),
            None,
        )
        if jwk is None:
            return Verdict(False, f"{signer} ne publie pas de clé de signature")
        resources = []
        for target in provenance["target"]:
            ttype, tid, _, version = target["reference"].split("/")
            stored = await fhir.store.vread(conn, ttype, tid, int(version))
            resources.append(orjson.loads(stored.content or "{}"))
    if not verify(jwk, jws_of(provenance), resources):
        return Verdict(False, f"SIGNATURE INVALIDE pour la feuille {number}")
    when = provenance["signature"][0]["when"]
    return Verdict(
        True,
        f"signature valide : feuille {number} signée par {name_of(author)} ({signer}) le {when},"
        f" {len(resources)} ressources",
    )
