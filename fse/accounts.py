"""Account setup that spans security and the FHIR store: a professional's account publishes
their public signing key on their Practitioner, so anyone can verify what they sign."""

from __future__ import annotations

from fse import fhir_json
from fse.crypto.signing import with_public_key
from fse.fhir_api.interactions import FhirService
from fse.security.users import Role, User, create_user


async def create_account(
    service: FhirService,
    username: str,
    password: str,
    role: Role,
    display_name: str,
    practitioner: str | None = None,
) -> User:
    user = await create_user(
        service.store.engine, username, password, role, display_name, practitioner
    )
    if practitioner and user.signing_jwk:
        await publish_signing_key(service, practitioner, user.signing_jwk)
    return user


async def publish_signing_key(service: FhirService, practitioner: str, jwk: dict[str, str]) -> None:
    """New version of the Practitioner carrying the public key (validated like any update)."""
    rtype, _, rid = practitioner.partition("/")
    async with service.store.transaction() as conn:
        current = await service.store.read(conn, rtype, rid)
        resource = with_public_key(fhir_json.loads(current.content or "{}"), jwk)
        written = await service.update(conn, rtype, rid, resource, if_match=current.version)
    service.announce([written.stored])
