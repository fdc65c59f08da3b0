"""A world to try every door in: the demo cast, one signed-in person of each role, and for each
role and type a resource that is theirs and one that is not (written through the store, as the
platform's own flows write them, so that reserved types have some too)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from fhir_profiles.identifiers import care_sheet_number
from fse.accounts import create_account
from fse.security.access import NARROWED, OWNER, ROLE_ORDER, Rule, permission
from fse.security.lookups import record_lookups
from fse.security.users import Role
from fse.store.search_params import SEARCH_PARAMS, SUPPORTED_TYPES, search_param
from tests.builders import FHIR_JSON, NGAP, SID, claim
from tests.conftest import Platform
from tests.fse.web.test_login import PASSWORD, csrf_of, login
from tests.reimbursement.demo import (
    CNSS,
    COVERAGE,
    DR_BENALI,
    FATIMA,
    LAB,
    OMAR,
    PHARMACIST,
    PHARMACY,
    load_demo,
)

LAB_PRACTITIONER = "0013"
STRANGER = "Practitioner/someone-else"
"""The owner of what is nobody's of ours: no person of the world is them."""
GTIN = "urn:oid:1.3.160"
_numbers = iter(range(700_000, 800_000))


@dataclass
class Person:
    role: Role
    username: str
    user_pk: int
    practitioner: str | None
    owner: str | None
    """What ``own`` resources of this person name: their pharmacy or lab, else themselves."""
    http: httpx.AsyncClient
    csrf: str

    @property
    def write_headers(self) -> dict[str, str]:
        return {**FHIR_JSON, "X-CSRF-Token": self.csrf}


@dataclass
class World:
    platform: Platform
    system: httpx.AsyncClient
    refs: dict[str, str]
    people: dict[Role, Person] = field(default_factory=dict)
    own: dict[tuple[Role, str], str] = field(default_factory=dict)
    """(role, type) -> id of a resource the person may see (any one if their rule is not
    narrowed)."""
    foreign: dict[tuple[Role, str], str] = field(default_factory=dict)
    """(role, type) -> id of a resource a narrowed rule hides from them."""
    any: dict[str, str] = field(default_factory=dict)
    looked_up: str = ""
    """Patient id the pharmacist and the lab looked up."""

    def patient(self, who: str) -> str:
        return self.refs[who]

    async def store(self, rtype: str, resource: dict[str, Any]) -> str:
        """Written as the platform's flows write (no REST, no access check)."""
        fhir = self.platform.app.state.fhir
        async with fhir.store.transaction() as conn:
            stored = await fhir.store.create(conn, rtype, {"resourceType": rtype, **resource})
        return stored.id

    async def close(self) -> None:
        for person in self.people.values():
            await person.http.aclose()
        await self.system.aclose()


def shaped(rtype: str, values: dict[str, str]) -> dict[str, Any]:
    """A resource whose search parameters (``param: Type/id``) hold these references."""
    resource: dict[str, Any] = {"resourceType": rtype}
    for name, reference in values.items():
        param = search_param(rtype, name)
        assert param is not None, (rtype, name)
        node = resource
        steps = param.paths[0].split(".")
        for step in steps[:-1]:
            node = node.setdefault(step, {})
        node[steps[-1]] = {"reference": reference}
    return resource


async def build_world(platform: Platform) -> World:
    await platform.truncate()
    transport = httpx.ASGITransport(app=platform.app)
    system = httpx.AsyncClient(
        transport=transport,
        base_url="http://test",
        headers={"Authorization": f"Bearer {platform.token}"},
    )
    world = World(platform, system, await load_demo(system))
    refs = world.refs
    accounts = {
        Role.PRESCRIBER: (refs[DR_BENALI], refs[DR_BENALI]),
        Role.PHARMACIST: (refs[PHARMACIST], refs[PHARMACY]),
        Role.LAB: (refs[LAB_PRACTITIONER], refs[LAB]),
        Role.CNSS_AGENT: (None, None),
    }
    fhir = platform.app.state.fhir
    for role, (practitioner, owner) in accounts.items():
        name = f"{role.value}.{uuid.uuid4().hex[:8]}"
        user = await create_account(fhir, name, PASSWORD, role, name, practitioner)
        http = httpx.AsyncClient(transport=transport, base_url="http://test")
        assert (await login(http, name)).status_code == 303
        csrf = csrf_of(await http.get("/espace"))
        world.people[role] = Person(role, name, user.pk, practitioner, owner, http, csrf)
    world.looked_up = refs[FATIMA].split("/")[1]
    for role in (Role.PHARMACIST, Role.LAB):
        now = datetime.now(UTC)
        await record_lookups(platform.engine, world.people[role].user_pk, [world.looked_up], now)
    for rtype in SUPPORTED_TYPES:
        world.any[rtype] = await world.store(rtype, _plain(rtype, refs))
        for role in ROLE_ORDER:
            await _own_and_foreign(world, role, rtype)
    return world


def revinclude_param(rtype: str) -> tuple[str, str] | None:
    """A reference parameter of the type, and the type it points to that every role may
    search: the insured (by id), a Practitioner or an Organization (the directory)."""
    for param in SEARCH_PARAMS[rtype]:
        if param.type == "reference" and param.targets == ("Patient",):
            return param.name, "Patient"
    for param in SEARCH_PARAMS[rtype]:
        for target in ("Practitioner", "Organization"):
            if param.type == "reference" and target in param.targets:
                return param.name, target
    return None


def anchor_of(refs: dict[str, str], rtype: str) -> dict[str, str]:
    """Every resource of the world names its type's revinclude anchor."""
    found = revinclude_param(rtype)
    if found is None:
        return {}
    param, target = found
    anchors = {"Patient": refs[OMAR], "Practitioner": refs[DR_BENALI], "Organization": refs[CNSS]}
    return {param: anchors[target]}


def _plain(rtype: str, refs: dict[str, str]) -> dict[str, Any]:
    return _without_type(shaped(rtype, anchor_of(refs, rtype)))


async def _own_and_foreign(world: World, role: Role, rtype: str) -> None:
    """The person's and someone else's resource of the type, by the rule that narrows it."""
    perm = permission(role, rtype, "r") or permission(role, rtype, "s")
    if perm is None or perm.rule not in NARROWED:
        world.own[role, rtype] = world.foreign[role, rtype] = world.any[rtype]
        return
    person = world.people[role]
    assert perm.via is not None and person.owner is not None
    if perm.rule is Rule.OWN:
        mine, theirs = person.owner, STRANGER
    else:
        mine, theirs = f"Patient/{world.looked_up}", world.refs[OMAR]
    for who, into in ((mine, world.own), (theirs, world.foreign)):
        head, _, tail = perm.via.partition(".")
        if tail:  # a chain: the resource names another that names the owner
            param = search_param(rtype, head)
            assert param is not None
            middle = param.targets[0]
            middle_id = await world.store(middle, _without_type(shaped(middle, {tail: who})))
            reference = f"{middle}/{middle_id}"
            values = {head: reference}
        else:
            values = {head: who}
        values = {**anchor_of(world.refs, rtype), **values}
        into[role, rtype] = await world.store(rtype, _without_type(shaped(rtype, values)))


def _without_type(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "resourceType"}


def new_body(world: World, rtype: str, owner: str) -> dict[str, Any]:
    """A valid resource of a type a person creates, naming ``owner`` where the type's owner
    parameter looks (FHIR R4B and the AMO guide accept it)."""
    refs = world.refs
    patient = {"reference": refs[FATIMA]}
    who = {"reference": owner}
    number = care_sheet_number(2026, next(_numbers))
    moment = "2026-11-20T09:30:00+01:00"
    bodies: dict[str, dict[str, Any]] = {
        "Encounter": {
            "identifier": [{"system": f"{SID}/consultation", "value": number}],
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": patient,
            "participant": [{"individual": who}],
            "period": {"start": moment, "end": moment},
        },
        "ChargeItem": {
            "identifier": [{"system": f"{SID}/acte", "value": f"{number}-A1"}],
            "status": "billable",
            "code": {"coding": [{"system": NGAP, "code": "C"}]},
            "subject": patient,
            "occurrenceDateTime": moment,
            "quantity": {"value": 1},
            "performer": [{"actor": who}],
            "priceOverride": {"value": 150, "currency": "MAD"},
        },
        "MedicationRequest": {
            "identifier": [{"system": f"{SID}/ligne-prescription", "value": f"{number}-M1"}],
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": GTIN, "code": "6118001141531"}]},
            "subject": patient,
            "authoredOn": moment,
            "requester": who,
            "dosageInstruction": [{"text": "1 comprimé 3 fois par jour"}],
        },
        "ServiceRequest": {
            "identifier": [{"system": f"{SID}/analyse", "value": f"{number}-B1"}],
            "status": "active",
            "intent": "order",
            "code": {"coding": [{"system": NGAP, "code": "B"}], "text": "Glycémie"},
            "subject": patient,
            "authoredOn": moment,
            "requester": who,
        },
        "CoverageEligibilityRequest": {
            "status": "active",
            "purpose": ["validation", "benefit"],
            "patient": patient,
            "servicedDate": "2026-11-20",
            "created": moment,
            "insurer": {"reference": refs[CNSS]},
            "provider": who,
        },
    }
    assert OWNER[rtype] in ("participant", "performer-actor", "requester", "provider")
    if rtype == "Claim":
        sheet = claim(refs[FATIMA], next(_numbers))
        sheet["provider"] = who
        sheet["insurance"][0]["coverage"] = {"reference": refs[COVERAGE[FATIMA]]}
        sheet["item"][0]["servicedDate"] = "2026-11-20"
        return sheet
    return {"resourceType": rtype, **bodies[rtype]}
