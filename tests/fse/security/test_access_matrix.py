"""One test per cell of the access model (fse/security/access.py), generated from it: every role
x type x interaction through a person's session on /fhir (and the same interaction as a batch
and a transaction entry), every operation, _include and _revinclude of every type, export; every
type x interaction for system clients by their scopes. A type or role added to the model (or to
the served types) gets its tests without anyone writing them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from fse.errors import ErrorCode
from fse.fhir_api.operations.validate import VALIDATE
from fse.security.access import (
    INTERACTION_LETTER,
    NARROWED,
    ROLE_ORDER,
    Rule,
    permission,
    reserved,
)
from fse.security.tables import system_clients
from fse.security.users import Role
from fse.store.search_params import SEARCH_PARAMS, SUPPORTED_TYPES, search_param
from reimbursement.operations import OPERATIONS as REIMBURSEMENT_OPERATIONS
from tests.builders import CIN, FHIR_JSON
from tests.conftest import Platform
from tests.fse.security.world import (
    STRANGER,
    World,
    anchor_of,
    build_world,
    new_body,
    revinclude_param,
    shaped,
)
from tests.reimbursement.demo import OMAR

INTERACTIONS = tuple(INTERACTION_LETTER)
WRITES = ("create", "update", "delete")
BATCHABLE = ("read", "search-type", "create", "update", "delete")
"""Interactions a batch or transaction entry can carry (vread and history are not entries)."""
CREATABLE = ("Encounter", "ChargeItem", "MedicationRequest", "ServiceRequest", "Claim")
CREATABLE += ("CoverageEligibilityRequest",)
"""Types with a valid body in tests/fse/security/world.py (what a person may create)."""
OK = {"read": 200, "vread": 200, "history-instance": 200, "search-type": 200}
OK |= {"history-type": 200, "create": 201, "update": 200, "delete": 204}


def _id(*parts: object) -> str:
    return "-".join(str(p) for p in parts)


@pytest.fixture(scope="module")
async def world(platform: Platform) -> AsyncIterator[World]:
    built = await build_world(platform)
    yield built
    await built.close()


# -- the expected answer, from the model ---------------------------------------------------------


def refusal(role: Role, rtype: str, interaction: str) -> tuple[int, ErrorCode] | None:
    """What the model says a person of ``role`` gets for the interaction, if refused."""
    letter = INTERACTION_LETTER[interaction]
    if interaction in WRITES and reserved(rtype, letter):
        return 405, ErrorCode.METHOD_NOT_ALLOWED
    perm = permission(role, rtype, letter)
    if perm is None:
        return 403, ErrorCode.FORBIDDEN
    if interaction == "history-type" and perm.rule is not Rule.ALL:
        return 403, ErrorCode.FORBIDDEN
    return None


def narrowed(role: Role, rtype: str, letter: str) -> bool:
    perm = permission(role, rtype, letter)
    return perm is not None and perm.rule in NARROWED


def code_of(response: httpx.Response) -> str | None:
    try:
        return response.json()["issue"][0]["details"]["coding"][0]["code"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def assert_refused(response: httpx.Response, status: int, code: ErrorCode) -> None:
    assert (response.status_code, code_of(response)) == (status, code.value), response.text


def entry_ids(bundle: dict[str, Any], mode: str) -> set[str]:
    return {
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    }


# -- the requests --------------------------------------------------------------------------------


def body_for(world: World, role: Role, rtype: str, mine: bool) -> dict[str, Any]:
    """What a person posts: a valid resource naming them (or someone else), else a bare one."""
    person = world.people[role]
    owner = person.owner if mine and person.owner else STRANGER
    if rtype in CREATABLE:
        return new_body(world, rtype, owner)
    return shaped(rtype, {})


async def direct(
    world: World, http: httpx.AsyncClient, headers: dict[str, str], rtype: str, rid: str, how: str
) -> httpx.Response:
    """The interaction alone, with ``headers`` (a person's CSRF, or another system token)."""
    if how == "read":
        return await http.get(f"/fhir/{rtype}/{rid}", headers=headers)
    if how == "vread":
        return await http.get(f"/fhir/{rtype}/{rid}/_history/1", headers=headers)
    if how == "history-instance":
        return await http.get(f"/fhir/{rtype}/{rid}/_history", headers=headers)
    if how == "search-type":
        return await http.get(f"/fhir/{rtype}", params={"_id": rid}, headers=headers)
    if how == "history-type":
        return await http.get(f"/fhir/{rtype}/_history", params={"_count": "1"}, headers=headers)
    if how == "delete":
        return await http.delete(f"/fhir/{rtype}/{rid}", headers=headers)
    current = (await world.system.get(f"/fhir/{rtype}/{rid}")).json()
    return await http.put(f"/fhir/{rtype}/{rid}", json=current, headers=headers)


def entry_for(rtype: str, rid: str, how: str, body: dict[str, Any]) -> dict[str, Any]:
    if how == "read":
        return {"request": {"method": "GET", "url": f"{rtype}/{rid}"}}
    if how == "search-type":
        return {"request": {"method": "GET", "url": f"{rtype}?_id={rid}"}}
    if how == "create":
        return {"resource": body, "request": {"method": "POST", "url": rtype}}
    if how == "update":
        return {
            "resource": {**body, "id": rid},
            "request": {"method": "PUT", "url": f"{rtype}/{rid}"},
        }
    return {"request": {"method": "DELETE", "url": f"{rtype}/{rid}"}}


# -- a person's session on /fhir -----------------------------------------------------------------

SESSION_CELLS = [(r, t, i) for r in ROLE_ORDER for t in SUPPORTED_TYPES for i in INTERACTIONS]


@pytest.mark.parametrize(
    ("role", "rtype", "interaction"), SESSION_CELLS, ids=[_id(*c) for c in SESSION_CELLS]
)
async def test_session_cell(world: World, role: Role, rtype: str, interaction: str) -> None:
    person = world.people[role]
    own, foreign = world.own[role, rtype], world.foreign[role, rtype]
    refused = refusal(role, rtype, interaction)
    target = await _scratch(world, role, rtype) if interaction in ("update", "delete") else own
    before = await world.platform.row_counts() if interaction in WRITES else None
    if interaction == "create":
        response = await person.http.post(
            f"/fhir/{rtype}", json=body_for(world, role, rtype, True), headers=person.write_headers
        )
    else:
        response = await direct(
            world, person.http, person.write_headers, rtype, target, interaction
        )
    if refused is not None:
        assert_refused(response, *refused)
        if before is not None:
            assert await world.platform.row_counts() == before
        return
    assert response.status_code == OK[interaction], response.text
    letter = INTERACTION_LETTER[interaction]
    if not narrowed(role, rtype, letter) or own == foreign:
        return
    if interaction == "search-type":  # the person's own only, whatever they ask for
        both = await person.http.get(f"/fhir/{rtype}", params={"_id": f"{own},{foreign}"})
        assert entry_ids(both.json(), "match") == {own}
    elif interaction == "create":  # only as themselves
        before = await world.platform.row_counts()
        theirs = await person.http.post(
            f"/fhir/{rtype}",
            json=body_for(world, role, rtype, False),
            headers=person.write_headers,
        )
        assert_refused(theirs, 403, ErrorCode.NOT_OWN_DATA)
        assert await world.platform.row_counts() == before
    elif interaction in ("read", "vread", "history-instance"):
        theirs = await direct(world, person.http, person.write_headers, rtype, foreign, interaction)
        assert_refused(theirs, 403, ErrorCode.NOT_OWN_DATA)


async def _scratch(world: World, role: Role, rtype: str) -> str:
    """A resource of the person's own, made for this test (updates and deletes change it)."""
    person = world.people[role]
    perm = permission(role, rtype, "r") or permission(role, rtype, "s")
    if perm is None or perm.rule not in NARROWED or person.owner is None:
        return await world.store(rtype, {})
    assert perm.via is not None
    head, _, tail = perm.via.partition(".")
    owner = person.owner if perm.rule is Rule.OWN else f"Patient/{world.looked_up}"
    if tail:
        return world.own[role, rtype]
    resource = shaped(rtype, {head: owner})
    return await world.store(rtype, {k: v for k, v in resource.items() if k != "resourceType"})


BATCH_CELLS = [(r, t, i) for r in ROLE_ORDER for t in SUPPORTED_TYPES for i in BATCHABLE]


@pytest.mark.parametrize(
    ("role", "rtype", "interaction"), BATCH_CELLS, ids=[_id(*c) for c in BATCH_CELLS]
)
async def test_session_cell_in_batch_and_transaction(
    world: World, role: Role, rtype: str, interaction: str
) -> None:
    """An entry answers as the same interaction alone: a batch entry by its own status, a
    transaction as a whole (with the entry's path)."""
    person = world.people[role]
    refused = refusal(role, rtype, interaction)
    rid = (
        await _scratch(world, role, rtype)
        if interaction in ("update", "delete")
        else world.own[role, rtype]
    )
    body = body_for(world, role, rtype, True)
    if interaction == "update":
        body = (await world.system.get(f"/fhir/{rtype}/{rid}")).json()
    entry = entry_for(rtype, rid, interaction, body)
    before = await world.platform.row_counts()
    batch = await person.http.post(
        "/fhir",
        json={"resourceType": "Bundle", "type": "batch", "entry": [entry]},
        headers=person.write_headers,
    )
    assert batch.status_code == 200, batch.text
    answered = batch.json()["entry"][0]["response"]
    if refused is not None:
        assert answered["status"].startswith(str(refused[0]))
        assert answered["outcome"]["issue"][0]["details"]["coding"][0]["code"] == refused[1]
        if interaction in WRITES:
            assert await world.platform.row_counts() == before
        transaction = await person.http.post(
            "/fhir",
            json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]},
            headers=person.write_headers,
        )
        assert_refused(transaction, *refused)
        assert transaction.json()["issue"][0]["expression"][0].startswith("Bundle.entry[0]")
        return
    assert answered["status"].startswith(str(OK[interaction])), answered
    if interaction == "search-type" and narrowed(role, rtype, "s"):
        foreign = world.foreign[role, rtype]
        searched = {"request": {"method": "GET", "url": f"{rtype}?_id={rid},{foreign}"}}
        again = await person.http.post(
            "/fhir",
            json={"resourceType": "Bundle", "type": "batch", "entry": [searched]},
            headers=person.write_headers,
        )
        assert entry_ids(again.json()["entry"][0]["resource"], "match") == {rid}
    if interaction == "read" and narrowed(role, rtype, "r"):
        foreign = {"request": {"method": "GET", "url": f"{rtype}/{world.foreign[role, rtype]}"}}
        again = await person.http.post(
            "/fhir",
            json={"resourceType": "Bundle", "type": "batch", "entry": [foreign]},
            headers=person.write_headers,
        )
        answered = again.json()["entry"][0]["response"]
        assert answered["status"].startswith("403") and "resource" not in again.json()["entry"][0]


IDENTIFIED_CELLS = [
    (r, t)
    for r in ROLE_ORDER
    for t in SUPPORTED_TYPES
    if (p := permission(r, t, "s")) is not None and p.rule is Rule.IDENTIFIED
]


@pytest.mark.parametrize(
    ("role", "rtype"), IDENTIFIED_CELLS, ids=[_id(*c) for c in IDENTIFIED_CELLS]
)
async def test_an_identified_search_names_the_insured(world: World, role: Role, rtype: str) -> None:
    """Professionals find an insured; they do not browse the registry, nor probe it by name."""
    http = world.people[role].http
    assert_refused(await http.get(f"/fhir/{rtype}"), 403, ErrorCode.FORBIDDEN)
    assert_refused(
        await http.get(f"/fhir/{rtype}", params={"_count": "5"}), 403, ErrorCode.FORBIDDEN
    )
    if search_param(rtype, "identifier"):
        unnamed = await http.get(f"/fhir/{rtype}", params={"identifier": f"{CIN}|"})
        assert_refused(unnamed, 403, ErrorCode.FORBIDDEN)
        named = await http.get(f"/fhir/{rtype}", params={"identifier": "BE123456"})
        assert named.status_code == 200, named.text
    if search_param(rtype, "patient"):
        by_patient = await http.get(f"/fhir/{rtype}", params={"patient": world.refs[OMAR]})
        assert by_patient.status_code == 200, by_patient.text
        by_name = await http.get(f"/fhir/{rtype}", params={"patient.name": "Omar"})
        assert_refused(by_name, 403, ErrorCode.FORBIDDEN)


# -- operations ----------------------------------------------------------------------------------


def _operations() -> list[tuple[str, str, str, bool, bool]]:
    return [
        (rtype, op.name, op.permission, op.checks_owner, op.instance_level)
        for op in (VALIDATE, *REIMBURSEMENT_OPERATIONS)
        for rtype in op.resource_types
    ]


OPERATIONS = _operations()


async def test_every_operation_of_the_app_is_in_the_matrix(platform: Platform) -> None:
    registry = platform.app.state.operations
    wired = {(t, op.name) for t in SUPPORTED_TYPES for op in registry.for_type(t)}
    assert wired == {(t, name) for t, name, *_ in OPERATIONS}


OPERATION_CELLS = [(r, *op) for r in ROLE_ORDER for op in OPERATIONS]


@pytest.mark.parametrize(
    ("role", "rtype", "name", "letter", "checks_owner", "instance"),
    OPERATION_CELLS,
    ids=[_id(r, t, n) for r, t, n, *_ in OPERATION_CELLS],
)
async def test_session_operation(
    world: World,
    role: Role,
    rtype: str,
    name: str,
    letter: str,
    checks_owner: bool,
    instance: bool,
) -> None:
    person = world.people[role]
    url = (
        f"/fhir/{rtype}/{world.own[role, rtype]}/${name}" if instance else f"/fhir/{rtype}/${name}"
    )
    body = _operation_body(world, role, rtype, name, mine=True)
    before = await world.platform.row_counts()
    response = await person.http.post(url, json=body, headers=person.write_headers)
    perm = permission(role, rtype, letter)
    if perm is None or (perm.rule in NARROWED and not checks_owner):
        assert_refused(response, 403, ErrorCode.FORBIDDEN)
        assert await world.platform.row_counts() == before
        return
    assert response.status_code < 500 and code_of(response) != ErrorCode.FORBIDDEN, response.text
    if perm.rule in NARROWED and name == "submit":  # only for themselves
        theirs = _operation_body(world, role, rtype, name, mine=False)
        answer = await person.http.post(url, json=theirs, headers=person.write_headers)
        assert_refused(answer, 403, ErrorCode.NOT_OWN_DATA)
        if rtype == "Claim":  # their own, but unsigned
            assert_refused(response, 403, ErrorCode.SIGNATURE_REQUIRED)
            assert await world.platform.row_counts() == before
        else:
            assert response.status_code == 200, response.text


def _operation_body(world: World, role: Role, rtype: str, name: str, mine: bool) -> dict[str, Any]:
    if name == "review":
        return {
            "resourceType": "Parameters",
            "parameter": [{"name": "decision", "valueCode": "release"}],
        }
    if name == "publish-tariffs":
        return {"resourceType": "Parameters", "parameter": []}
    return body_for(world, role, rtype, mine)


# -- _include and _revinclude --------------------------------------------------------------------

INCLUDE_CELLS = [(r, t) for r in ROLE_ORDER for t in SUPPORTED_TYPES]


@pytest.mark.parametrize(("role", "rtype"), INCLUDE_CELLS, ids=[_id(*c) for c in INCLUDE_CELLS])
async def test_session_include(world: World, role: Role, rtype: str) -> None:
    """A Provenance of the person's points at their resource of the type and someone else's:
    including the type is refused if they may not read it, else only theirs comes along."""
    person = world.people[role]
    own, foreign = world.own[role, rtype], world.foreign[role, rtype]
    owner = person.owner or STRANGER
    pointer = await world.store(
        "Provenance",
        {
            "agent": [{"who": {"reference": owner}}],
            "target": [{"reference": f"{rtype}/{own}"}, {"reference": f"{rtype}/{foreign}"}],
        },
    )
    params = {"_id": pointer, "_include": f"Provenance:target:{rtype}"}
    response = await person.http.get("/fhir/Provenance", params=params)
    if permission(role, rtype, "r") is None:
        assert_refused(response, 403, ErrorCode.FORBIDDEN)
        return
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert entry_ids(bundle, "match") == {pointer}
    expected = {own} if narrowed(role, rtype, "r") else {own, foreign}
    if rtype == "Provenance":
        expected.discard(pointer)
    assert entry_ids(bundle, "include") == expected - {pointer}
    withheld = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert bool(withheld) == (own != foreign and narrowed(role, rtype, "r"))


REVINCLUDE_CELLS = [(r, t) for r in ROLE_ORDER for t in SUPPORTED_TYPES if revinclude_param(t)]


@pytest.mark.parametrize(
    ("role", "rtype"), REVINCLUDE_CELLS, ids=[_id(*c) for c in REVINCLUDE_CELLS]
)
async def test_session_revinclude(world: World, role: Role, rtype: str) -> None:
    """Resources of the type naming an anchor come along only if the person may read them."""
    found = revinclude_param(rtype)
    assert found is not None
    param, anchor_type = found
    anchors = {anchor_of(world.refs, rtype)[param].split("/")[1]}
    if anchor_type == "Patient":
        anchors.add(world.looked_up)  # what the looked-up rule's own resources name
    params = {"_id": ",".join(sorted(anchors)), "_revinclude": f"{rtype}:{param}"}
    response = await world.people[role].http.get(f"/fhir/{anchor_type}", params=params)
    if permission(role, rtype, "r") is None:
        assert_refused(response, 403, ErrorCode.FORBIDDEN)
        return
    assert response.status_code == 200, response.text
    included = entry_ids(response.json(), "include")
    own, foreign = world.own[role, rtype], world.foreign[role, rtype]
    assert own in included
    assert (foreign in included) == (own == foreign or not narrowed(role, rtype, "r"))


# -- export --------------------------------------------------------------------------------------

EXPORT_CELLS = [
    (r, url) for r in ROLE_ORDER for url in ("/fhir/$export", "/fhir/Patient/$export", "PATIENT")
]


@pytest.mark.parametrize(("role", "url"), EXPORT_CELLS, ids=[_id(*c) for c in EXPORT_CELLS])
async def test_session_export_is_refused(world: World, role: Role, url: str) -> None:
    """Bulk export is for CNSS system clients only."""
    if url == "PATIENT":
        url = f"/fhir/{world.refs[OMAR]}/$export"
    before = await world.platform.row_counts()
    response = await world.people[role].http.get(url, headers={"Prefer": "respond-async"})
    assert_refused(response, 403, ErrorCode.FORBIDDEN)
    assert await world.platform.row_counts() == before


# -- system clients, by their scopes -------------------------------------------------------------

_clients: dict[tuple[int, str], str] = {}


async def token_with(platform: Platform, scopes: str) -> str:
    """A token of a system client holding exactly ``scopes`` (clients made once per scope)."""
    key = (id(platform), scopes)
    if key not in _clients:
        client_id = f"matrix-{uuid.uuid4().hex[:12]}"
        async with platform.engine.begin() as conn:
            await conn.execute(
                insert(system_clients).values(
                    name=client_id,
                    client_id=client_id,
                    secret_hash="never used: tokens are issued directly by the test",
                    scopes=scopes,
                    created_at=datetime.now(UTC),
                )
            )
        _clients[key] = client_id
    return platform.token_for(_clients[key], scopes)


def all_but(rtype: str, letter: str) -> str:
    others = [f"system/{t}.cruds" for t in SUPPORTED_TYPES if t != rtype]
    kept = "".join(c for c in "cruds" if c != letter)
    return " ".join([*others, f"system/{rtype}.{kept}"])


SYSTEM_CELLS = [(t, i) for t in SUPPORTED_TYPES for i in INTERACTIONS]


@pytest.mark.parametrize(
    ("rtype", "interaction"), SYSTEM_CELLS, ids=[_id(*c) for c in SYSTEM_CELLS]
)
async def test_system_cell(world: World, rtype: str, interaction: str) -> None:
    """The letter on the type opens the interaction; every other scope does not."""
    letter = INTERACTION_LETTER[interaction]
    platform = world.platform
    outcomes = []
    for scopes in (f"system/{rtype}.{letter}", all_but(rtype, letter)):
        headers = {"Authorization": f"Bearer {await token_with(platform, scopes)}", **FHIR_JSON}
        rid = world.any[rtype]
        if interaction in ("update", "delete"):
            valid = new_body(world, rtype, STRANGER) if rtype in CREATABLE else {}
            rid = await world.store(rtype, {k: v for k, v in valid.items() if k != "resourceType"})
        before = await platform.row_counts()
        if interaction == "create":
            body = new_body(world, rtype, STRANGER) if rtype in CREATABLE else shaped(rtype, {})
            response = await world.system.post(f"/fhir/{rtype}", json=body, headers=headers)
        else:
            response = await direct(world, world.system, headers, rtype, rid, interaction)
        outcomes.append((response, before))
    (granted, _), (denied, before) = outcomes
    if interaction in WRITES and reserved(rtype, letter):
        assert_refused(granted, 405, ErrorCode.METHOD_NOT_ALLOWED)
        assert_refused(denied, 405, ErrorCode.METHOD_NOT_ALLOWED)
        return
    assert granted.status_code < 500 and code_of(granted) != ErrorCode.FORBIDDEN, granted.text
    if interaction not in ("create", "update") or rtype in CREATABLE:
        # (a bare resource may break the profile: those writes only show they passed the door)
        assert granted.status_code == OK[interaction], granted.text
    assert_refused(denied, 403, ErrorCode.FORBIDDEN)
    if interaction in WRITES:
        assert await platform.row_counts() == before


LINK_CELLS = [t for t in SUPPORTED_TYPES if t != "Provenance"]


@pytest.mark.parametrize("rtype", LINK_CELLS)
async def test_system_include_revinclude_chain_and_export(world: World, rtype: str) -> None:
    """A client reading only Provenance cannot pull the type in through an include, a
    revinclude or a chain, nor export it; reading it too, it can."""
    platform = world.platform
    only = {"Authorization": f"Bearer {await token_with(platform, 'system/Provenance.rs')}"}
    both_scopes = f"system/Provenance.rs system/{rtype}.rs"
    both = {"Authorization": f"Bearer {await token_with(platform, both_scopes)}"}
    http = world.system
    pointer = await world.store(
        "Provenance", {"target": [{"reference": f"{rtype}/{world.any[rtype]}"}]}
    )
    include = {"_id": pointer, "_include": f"Provenance:target:{rtype}"}
    revinclude = {"_id": pointer, "_revinclude": f"{rtype}:{_any_param(rtype)}"}
    chain = {"target:" + rtype + "._id": world.any[rtype]}
    for params in (include, chain) + ((revinclude,) if _any_param(rtype) else ()):
        assert_refused(
            await http.get("/fhir/Provenance", params=params, headers=only),
            403,
            ErrorCode.FORBIDDEN,
        )
    allowed = await http.get("/fhir/Provenance", params=include, headers=both)
    assert entry_ids(allowed.json(), "include") == {world.any[rtype]}
    chained = await http.get("/fhir/Provenance", params=chain, headers=both)
    assert pointer in entry_ids(chained.json(), "match")
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "request": {
                    "method": "GET",
                    "url": f"Provenance?_id={pointer}&_include=Provenance:target:{rtype}",
                }
            }
        ],
    }
    answered = (await http.post("/fhir", json=batch, headers=only)).json()["entry"][0]
    assert answered["response"]["status"].startswith("403") and "resource" not in answered
    kick = {**only, "Prefer": "respond-async"}
    exported = await http.get("/fhir/$export", params={"_type": rtype}, headers=kick)
    assert_refused(exported, 403, ErrorCode.FORBIDDEN)


def _any_param(rtype: str) -> str | None:
    """A reference parameter of the type that may point to any type (so to a Provenance)."""
    return next(
        (p.name for p in SEARCH_PARAMS[rtype] if p.type == "reference" and not p.targets), None
    )
