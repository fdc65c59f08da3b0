"""Who is at the counter: the signed-in pharmacist and the pharmacy (Organization) they work
for, found through their PractitionerRole."""

from __future__ import annotations

from dataclasses import dataclass

from fse.fhir_api.interactions import FhirService
from fse.fhir_api.reading import ALL, search
from fse.resources import name_of
from reimbursement.claims import reference_id


@dataclass(frozen=True)
class Pharmacist:
    practitioner: str
    """``Practitioner/<id>``."""
    pharmacy: str
    """``Organization/<id>``."""
    name: str
    pharmacy_name: str


async def pharmacist_of(fhir: FhirService, practitioner: str | None) -> Pharmacist | None:
    """None when the account is linked to no Practitioner or to no active pharmacy role."""
    if not practitioner:
        return None
    async with fhir.store.snapshot() as conn:
        roles = await search(
            fhir, conn, "PractitionerRole", [("practitioner", practitioner)], count=ALL
        )
        for role in roles:
            codes = {c.get("code") for cc in role.get("code", []) for c in cc.get("coding", [])}
            org_id = reference_id(role.get("organization"), "Organization")
            if role.get("active") is False or "pharmacist" not in codes or org_id is None:
                continue
            people = await search(
                fhir, conn, "Practitioner", [("_id", practitioner.split("/")[-1])], count=1
            )
            orgs = await search(fhir, conn, "Organization", [("_id", org_id)], count=1)
            if people and orgs:
                return Pharmacist(
                    practitioner, f"Organization/{org_id}", name_of(people[0]), name_of(orgs[0])
                )
    return None
