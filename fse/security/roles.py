"""What each role may do through the FHIR API, as SMART scopes (data, reviewed with CNSS).

A pharmacist reads prescriptions but never writes them; a prescriber never dispenses; CNSS
agents read everything and review held claims. Features act for a user with exactly these grants.
"""

from __future__ import annotations

from fse.security.scopes import Grant, parse
from fse.security.users import Role

_REGISTRY_READ = (
    "system/Patient.rs system/Coverage.rs system/Condition.rs system/Practitioner.rs "
    "system/PractitionerRole.rs system/Organization.rs "
    "system/CoverageEligibilityRequest.crs system/CoverageEligibilityResponse.rs"
)

ROLE_SCOPES: dict[Role, str] = {
    Role.PRESCRIBER: (
        f"{_REGISTRY_READ} system/Encounter.cruds system/ChargeItem.cruds "
        "system/MedicationRequest.cruds system/ServiceRequest.cruds system/Claim.cruds "
        "system/ClaimResponse.rs system/MedicationDispense.rs system/Provenance.crs"
    ),
    Role.PHARMACIST: (
        # Dispensing goes through the pharmacy's screen (signed, exactly once, settled), so
        # MedicationDispense and the remaining quantities are never written around it.
        f"{_REGISTRY_READ} system/MedicationRequest.rs system/MedicationDispense.rs "
        "system/Claim.cruds system/ClaimResponse.rs system/Provenance.crs"
    ),
    Role.LAB: (
        f"{_REGISTRY_READ} system/ServiceRequest.rs system/ChargeItem.cruds system/Claim.cruds "
        "system/ClaimResponse.rs system/Provenance.crs"
    ),
    # Agents read everything and decide on held claims (ClaimResponse/$review).
    Role.CNSS_AGENT: "system/*.rs system/ClaimResponse.u",
}


def grants_of(role: Role) -> tuple[Grant, ...]:
    return parse(ROLE_SCOPES[role])
