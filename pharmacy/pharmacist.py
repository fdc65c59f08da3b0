"""Who is at the counter: the signed-in pharmacist and the pharmacy (Organization) they work
for, found through their PractitionerRole."""

from __future__ import annotations

from dataclasses import dataclass

from fse.errors import Gone, NotFound
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.reading import read_each_with_referrers, search
from fse.resources import name_of
from reimbursement.claims import reference_id
from reimbursement.context import ROLES_OF


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
    rtype, _, practitioner_id = practitioner.partition("/") if practitioner else ("", "", "")
    if rtype != "Practitioner" or not practitioner_id:
        return None
    async with fhir.store.snapshot() as conn:
        # Every pharmacy page asks: the person with their roles in one statement, then the
        # pharmacy (not remembered between requests: a role ended stops the next page).
        (found,) = await read_each_with_referrers(
            fhir, conn, [("Practitioner", practitioner_id, [ROLES_OF])]
        )
        if isinstance(found, (NotFound, Gone)):
            return None
        person, (roles,) = found
        for role in roles:
            codes = {c.get("code") for cc in role.get("code", []) for c in cc.get("coding", [])}
            org_id = reference_id(role.get("organization"), "Organization")
            if role.get("active") is False or "pharmacist" not in codes or org_id is None:
                continue
            orgs = await search(fhir, conn, "Organization", [("_id", org_id)], count=1)
            if orgs:
                return Pharmacist(
                    practitioner, f"Organization/{org_id}", name_of(person), name_of(orgs[0])
                )
    return None
