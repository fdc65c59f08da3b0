"""Anyone can check a care sheet: the Provenance names each resource at the version signed, the
signer's Practitioner publishes the public key, and each resource's current version must still
be the signed one, but for the changes the platform itself makes (``lifecycle.py``: dispensed,
cancelled), which are reported. Any other change, or a deleted resource, fails the check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from fhir_profiles.systems import CONSULTATION_SYSTEM, SIGNING_KEY_EXTENSION
from fse import fhir_json
from fse.crypto.provenance import jws_of, verify
from fse.errors import Gone, NotFound
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.reading import ALL, search
from fse.resources import name_of
from prescriber.lifecycle import changes


@dataclass(frozen=True)
class Verdict:
    valid: bool
    message: str
    """One line per finding: the signature, then what changed since, resource by resource."""


async def verify_sheet(fhir: FhirService, number: str) -> Verdict:
    async with fhir.store.snapshot() as conn:
        encounters = await search(
            fhir, conn, "Encounter", [("identifier", f"{CONSULTATION_SYSTEM}|{number}")], count=1
        )
        if not encounters:
            return Verdict(False, f"aucune feuille de soins {number}")
        signed = await search(
            fhir, conn, "Provenance", [("target", f"Encounter/{encounters[0]['id']}")], count=ALL
        )
        if not signed:
            return Verdict(False, f"la feuille {number} n'a pas de signature (Provenance)")
        doctors = _participants(encounters[0])
        provenance = next((p for p in signed if _signer(p) in doctors), None)
        if provenance is None:
            others = ", ".join(sorted({str(_signer(p)) for p in signed}))
            return Verdict(
                False,
                f"SIGNATURE INVALIDE : la feuille {number} est signée par {others}, "
                f"pas par son médecin ({', '.join(sorted(doctors))})",
            )
        signer = str(_signer(provenance))
        rtype, _, rid = signer.partition("/")
        author = fhir_json.loads((await fhir.store.read(conn, rtype, rid)).content or "{}")
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
        resources: list[dict[str, Any]] = []
        current: list[dict[str, Any] | None] = []
        for target in provenance["target"]:
            ttype, tid, _, version = target["reference"].split("/")
            try:
                stored = await fhir.store.vread(conn, ttype, tid, int(version))
            except (Gone, NotFound):
                missing = f"{ttype}/{tid}/_history/{version}"
                return Verdict(False, f"SIGNATURE INVALIDE : version signée absente ({missing})")
            resources.append(fhir_json.loads(stored.content or "{}"))
            try:
                now = await fhir.store.read(conn, ttype, tid)
                current.append(fhir_json.loads(now.content or "{}"))
            except (Gone, NotFound):
                current.append(None)
    if not verify(jwk, jws_of(provenance), resources):
        return Verdict(False, f"SIGNATURE INVALIDE pour la feuille {number}")
    when = provenance["signature"][0]["when"]
    by = f"signée par {name_of(author)} ({signer}) le {when}, {len(resources)} ressources"
    lines, problems = _since_signing(resources, current)
    if problems:
        head = f"FEUILLE MODIFIÉE après signature : feuille {number} {by}"
        return Verdict(False, "\n".join([head, *problems, *lines]))
    return Verdict(True, "\n".join([f"signature valide : feuille {number} {by}", *lines]))


def _since_signing(
    signed: list[dict[str, Any]], current: list[dict[str, Any] | None]
) -> tuple[list[str], list[str]]:
    """(what the sheet's life changed, reported; what else changed or disappeared, failures)."""
    lines: list[str] = []
    problems: list[str] = []
    for was, now in zip(signed, current, strict=True):
        ref = f"{was['resourceType']}/{was['id']}"
        if now is None:
            problems.append(f"SUPPRIMÉE après signature : {ref}")
            continue
        found = changes(was, now)
        if found.tampered:
            problems.append(f"MODIFIÉE après signature : {ref} ({', '.join(found.tampered)})")
        labels = dict.fromkeys(rule.label for rule, _ in found.lifecycle)
        if labels:
            shown = ", ".join(value for _, value in found.lifecycle)
            lines.append(f"  depuis la signature : {ref} {' et '.join(labels)} ({shown})")
    return lines, problems


def _participants(encounter: dict[str, Any]) -> set[str]:
    """The sheet's doctors: only their signature makes it theirs."""
    return {
        ref
        for p in encounter.get("participant", []) or []
        if isinstance(ref := (p.get("individual") or {}).get("reference"), str)
    }


def _signer(provenance: dict[str, Any]) -> str | None:
    signature = (provenance.get("signature") or [{}])[0]
    return (signature.get("who") or {}).get("reference")
