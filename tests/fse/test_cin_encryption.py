"""The CIN at rest: a database dump reveals none, yet search, uniqueness and reads work; keys
rotate (docs/security.md)."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import uuid
from datetime import date
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import inspect, select, text

from fhir_profiles.identifiers import masked_cin
from fhir_profiles.systems import CIN_SYSTEM
from fse.app import close, create_app
from fse.crypto.cin import CinKeyError, CinUnreadable, CinVault, vault_for, vault_from
from fse.seed import demo_bundle
from fse.store.cin_rotation import rotate_cin
from fse.store.repository import ResourceStore
from fse.store.tables import idx_token, resource_versions, resources, unique_identifiers
from prescriber.lookup import find_insured
from reimbursement.reference_data import default_books
from tests.conftest import Platform
from tests.pharmacy.helpers import counter, fatima_sheet, line, order
from tests.reimbursement.demo import DR_BENALI, FATIMA

FHIR_JSON = {"Content-Type": "application/fhir+json"}
TODAY = date(2026, 11, 23)


def demo_cins() -> set[str]:
    return {
        ident["value"]
        for entry in demo_bundle()["entry"]
        for ident in entry["resource"].get("identifier", [])
        if ident.get("system") == CIN_SYSTEM
    }


async def dump(platform: Platform) -> list[tuple[str, str]]:
    """Every value of every row of every table, as text: what ``pg_dump`` would reveal."""
    async with platform.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        found = []
        for name in names:
            for row in await conn.execute(text(f'SELECT * FROM "{name}"')):
                found += [(name, _text(value)) for value in row if value is not None]
    return found


def _text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


def revealed(rows: list[tuple[str, str]], cins: set[str]) -> list[tuple[str, str]]:
    return [(table, cin) for table, value in rows for cin in cins if cin in value]


def patient(cin: str, immatriculation: str | None = None) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "system": "https://fse.cnss.ma/fhir/sid/immatriculation",
                "value": immatriculation or f"{uuid.uuid4().int % 10**9:09d}",
            },
            {"system": CIN_SYSTEM, "value": cin},
        ],
        "name": [{"family": "Test", "given": ["Cin"]}],
        "gender": "female",
        "birthDate": "1980-01-01",
    }


async def post(client: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/fhir/Patient", json=resource, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_database_dump_reveals_no_cin_after_the_doctor_and_the_pharmacist_looked_up(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, _sheet = await fatima_sheet(platform, client)
    fhir = platform.app.state.fhir
    doctor = await find_insured(fhir, default_books(), "BE 123456", TODAY, refs[DR_BENALI])
    assert [i.cin for i in doctor] == ["BE123456"]
    desk = await counter(platform, refs)
    found = await desk.lines("BE123456")
    zovirax = line(found, "ZOVIRAX")
    await desk.dispense(zovirax.patient_id, order(zovirax, 1))
    api = await client.get(
        "/fhir/Claim",
        params={"patient.identifier": f"{CIN_SYSTEM}|BE123456", "_include": "Claim:patient"},
    )
    assert api.status_code == 200 and "BE123456" in api.text  # served in clear to the caller
    audit = await client.get("/fhir/AuditEvent", params={"patient": refs[FATIMA]})
    narratives = [e["resource"]["text"]["div"] for e in audit.json()["entry"]]
    assert any(masked_cin("BE123456") in n for n in narratives), narratives

    rows = await dump(platform)
    assert revealed(rows, demo_cins()) == []
    assert any(value.startswith("bi:v1:") for table, value in rows if table == "idx_token")
    assert any("enc:v1:" in value for table, value in rows if table == "resources")


async def test_stored_json_and_index_rows_hold_the_sealed_cin_and_reads_open_it(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    created = await client.post("/fhir/Patient", json=patient("BE123456"), headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["identifier"][1]["value"] == "BE123456"
    pid = body["id"]
    async with platform.engine.connect() as conn:
        stored = await conn.scalar(select(resources.c.content).where(resources.c.id == pid))
        tokens = (await conn.execute(select(idx_token.c.code, idx_token.c.system))).all()
        claims = (await conn.execute(select(unique_identifiers.c.value))).scalars().all()
    sealed = f"enc:v1:{vault_for(platform.settings).current}:"
    assert "BE123456" not in str(stored) and sealed in str(stored)
    assert all(code != "BE123456" for code, _ in tokens)
    assert next(c for c, s in tokens if s == CIN_SYSTEM).startswith("bi:v1:")
    assert "BE123456" not in claims

    read = (await client.get(f"/fhir/Patient/{pid}")).json()
    assert read["identifier"][1] == {"system": CIN_SYSTEM, "value": "BE123456"}
    body["gender"] = "male"
    updated = await client.put(f"/fhir/Patient/{pid}", json=body, headers=FHIR_JSON)
    assert updated.status_code == 200 and updated.headers["ETag"] == 'W/"2"'
    assert updated.json()["identifier"][1]["value"] == "BE123456"
    async with platform.engine.connect() as conn:  # version 1's JSON moved into its history row
        superseded = await conn.scalar(
            select(resource_versions.c.content).where(
                resource_versions.c.id == pid, resource_versions.c.version == 1
            )
        )
    assert "BE123456" not in str(superseded) and sealed in str(superseded)
    first = (await client.get(f"/fhir/Patient/{pid}/_history/1")).json()
    assert first["identifier"][1]["value"] == "BE123456" and first["meta"]["versionId"] == "1"
    history = (await client.get(f"/fhir/Patient/{pid}/_history")).json()
    assert [e["resource"]["identifier"][1]["value"] for e in history["entry"]] == ["BE123456"] * 2


async def test_search_by_cin_finds_the_insured_with_or_without_the_system(
    client: httpx.AsyncClient,
) -> None:
    created = await post(client, patient("K445566"))
    await client.post("/fhir/Patient", json=patient("K445567"), headers=FHIR_JSON)
    for value in (f"{CIN_SYSTEM}|K445566", "K445566"):
        found = (await client.get("/fhir/Patient", params={"identifier": value})).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [created["id"]], value
    other = await client.get("/fhir/Patient", params={"identifier:not": f"{CIN_SYSTEM}|K445566"})
    assert created["id"] not in other.text and "K445567" in other.text
    conditional = await client.post(
        "/fhir/Patient",
        json=patient("K445566"),
        headers={**FHIR_JSON, "If-None-Exist": f"identifier={CIN_SYSTEM}|K445566"},
    )
    assert conditional.status_code == 200 and conditional.json()["id"] == created["id"]


async def test_two_insured_with_one_cin_are_refused_through_the_blind_index(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post("/fhir/Patient", json=patient("BE7"), headers=FHIR_JSON)).is_success
    again = await client.post("/fhir/Patient", json=patient("BE7"), headers=FHIR_JSON)
    assert again.status_code == 409
    issue = again.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "FSE-0009"
    assert "Patient.identifier[1]" in issue["expression"]
    assert f"{CIN_SYSTEM}|BE*" in issue["diagnostics"]  # masked, even to the sender
    assert "bi:v1:" not in issue["diagnostics"]


def new_key() -> bytes:
    return os.urandom(32)


def keys_text(keys: dict[str, bytes]) -> str:
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in keys.items())


async def test_rotation_reseals_every_version_and_the_old_key_can_then_go(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    before = vault_for(platform.settings)  # key A: the platform's own key file
    created = await post(client, patient("A112244"))
    created["gender"] = "male"
    await client.put(f"/fhir/Patient/{created['id']}", json=created, headers=FHIR_JSON)
    only_b = CinVault({"B": new_key()}, before.index_key)
    both = CinVault({"B": only_b.keys["B"], **before.keys}, before.index_key)

    with pytest.raises(CinUnreadable) as missing:  # the old key removed too early
        await _read(platform, only_b, created["id"])
    assert f"key '{before.current}'" in missing.value.diagnostics
    assert "fse cin rotate" in missing.value.diagnostics
    assert missing.value.outcome()["issue"][0]["details"]["coding"][0]["code"] == "FSE-0031"

    rotated = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "fse.cli", "cin", "rotate", "--batch", "1"],
        env={
            **os.environ,
            "FSE_DATABASE_URL": platform.settings.database_url,
            "FSE_CIN_KEYS": keys_text(both.keys),
            "FSE_CIN_INDEX_KEY": base64.b64encode(before.index_key).decode(),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "resource_versions: 1 examined, 1 rewritten" in rotated.stdout
    assert "rows examined" in rotated.stderr  # progress
    again = await rotate_cin(ResourceStore(platform.engine, both))  # idempotent
    assert again.total_rewritten == 0

    rows = await dump(platform)
    assert not any(f"enc:v1:{before.current}:" in value for _, value in rows)
    assert revealed(rows, {"A112244"}) == []
    async with _app(platform, only_b) as http:
        read = await http.get(f"/fhir/Patient/{created['id']}")
        assert read.json()["identifier"][1]["value"] == "A112244"
        first = await http.get(f"/fhir/Patient/{created['id']}/_history/1")
        assert first.json()["identifier"][1]["value"] == "A112244"
        found = await http.get("/fhir/Patient", params={"identifier": f"{CIN_SYSTEM}|A112244"})
        assert [e["resource"]["id"] for e in found.json()["entry"]] == [created["id"]]


async def test_a_server_without_the_key_answers_an_operation_outcome_saying_what_to_do(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    created = await post(client, patient("BK1"))
    stranger = CinVault({"C": new_key()}, vault_for(platform.settings).index_key)
    async with _app(platform, stranger) as http:
        read = await http.get(f"/fhir/Patient/{created['id']}")
    assert read.status_code == 500
    issue = read.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "FSE-0031"
    assert "FSE_CIN_KEYS" in issue["diagnostics"]


async def test_rotation_seals_cins_stored_in_clear_before_sealing_existed(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    created = await post(client, patient("AQ908172"))
    vault = vault_for(platform.settings)
    async with platform.engine.begin() as conn:  # as an older version of the platform stored it
        clear = orjson.dumps(created).decode()
        for table in (resources, resource_versions):
            await conn.execute(
                table.update().where(table.c.id == created["id"]).values(content=clear)
            )
        await conn.execute(
            idx_token.update().where(idx_token.c.system == CIN_SYSTEM).values(code="AQ908172")
        )
        await conn.execute(
            unique_identifiers.update()
            .where(unique_identifiers.c.system == CIN_SYSTEM)
            .values(value="AQ908172")
        )
    assert revealed(await dump(platform), {'AQ908172"'}) != []
    rotation = await rotate_cin(ResourceStore(platform.engine, vault))
    assert rotation.rewritten == {
        "resources": 1,
        "resource_versions": 1,
        "idx_token": 1,
        "unique_identifiers": 1,
    }
    assert revealed(await dump(platform), {'AQ908172"'}) == []
    found = await client.get("/fhir/Patient", params={"identifier": f"{CIN_SYSTEM}|AQ908172"})
    assert found.json()["entry"][0]["resource"]["identifier"][1]["value"] == "AQ908172"
    duplicate = await client.post("/fhir/Patient", json=patient("AQ908172"), headers=FHIR_JSON)
    assert duplicate.status_code == 409


def test_keys_come_from_the_environment_or_a_private_key_file(tmp_path: Any) -> None:
    path = tmp_path / "cin-keys.json"
    first, second = vault_from("", "", path), vault_from("", "", path)
    assert first == second and oct(path.stat().st_mode & 0o777) == "0o600"
    assert first.blind("be 123456") == first.blind("BE123456") != first.blind("BE123457")
    assert first.open(first.seal("BE123456")) == "BE123456"
    assert first.seal("BE123456") != first.seal("BE123456")  # a fresh nonce each time
    key = base64.b64encode(new_key()).decode()
    env = vault_from(f"new:{key}, old:{key}", key, path)
    assert env.current == "new" and list(env.keys) == ["new", "old"]
    for keys, index in ((f"new:{key}", ""), ("new:c2hvcnQ=", key), (f"a b:{key}", key)):
        with pytest.raises(CinKeyError):
            vault_from(keys, index, path)


async def _read(platform: Platform, vault: CinVault, rid: str) -> Any:
    store = ResourceStore(platform.engine, vault)
    async with store.snapshot() as conn:
        return await store.read(conn, "Patient", rid)


class _app:
    """The app on the same database with other CIN keys (a server restarted with them)."""

    def __init__(self, platform: Platform, vault: CinVault) -> None:
        self.platform, self.vault = platform, vault

    async def __aenter__(self) -> httpx.AsyncClient:
        settings = self.platform.settings.model_copy(
            update={
                "cin_keys": keys_text(self.vault.keys),
                "cin_index_key": base64.b64encode(self.vault.index_key).decode(),
            }
        )
        self.app = create_app(settings)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {self.platform.token}"},
        )
        return self.http

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await close(self.app)
