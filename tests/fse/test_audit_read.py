"""The AuditEvent every read of an insured's data leaves: stored without being validated again
per read (it costs a page view ~0.5 ms), so its shapes are proven valid here, once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from fse.audit import audit_read, read_mark
from fse.resources import name_of, validation_issues
from tests.conftest import Platform
from tests.reimbursement.demo import DR_BENALI, FATIMA, PHARMACIST, PHARMACY, SARA, load_demo
from tests.statements import statements


@pytest.mark.parametrize("for_organization", [False, True])
async def test_each_read_is_recorded_as_a_valid_audit_event(
    platform: Platform, client: httpx.AsyncClient, for_organization: bool
) -> None:
    refs = await load_demo(client)
    reader = refs[PHARMACIST] if for_organization else refs[DR_BENALI]
    organization = refs[PHARMACY] if for_organization else None
    fhir = platform.app.state.fhir
    read = [refs[FATIMA].split("/")[1], refs[SARA].split("/")[1]]
    await audit_read(fhir, reader, read, "recherche 123456789", "test", organization)
    found = (await client.get("/fhir/AuditEvent", params={"agent": reader})).json()["entry"]
    assert len(found) == 1
    event = found[0]["resource"]
    assert validation_issues(event) == []
    assert [e["what"]["reference"] for e in event["entity"]] == [refs[FATIMA], refs[SARA]]
    agents = [a["who"]["reference"] for a in event["agent"]]
    assert agents == [reader, *([organization] if organization else [])]
    assert "a consulté vos données : recherche 123456789." in event["text"]["div"]


async def test_a_consultation_is_recorded_once_and_anything_else_again(
    platform: Platform, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pages of one visit (form, review, signature) read the same insured for the same
    purpose: one line in the insured's log, not four. Another purpose, reader, pharmacy or
    insured is another consultation; so is the same one once the window has passed."""
    refs = await load_demo(client)
    fhir = platform.app.state.fhir
    fatima, sara = refs[FATIMA].split("/")[1], refs[SARA].split("/")[1]

    async def recorded() -> int:
        found = await client.get("/fhir/AuditEvent", params={"action": "R", "_total": "accurate"})
        return int(found.json()["total"])

    async def read(reader: str, who: list[str], what: str, organization: str | None = None):  # type: ignore[no-untyped-def]
        await audit_read(fhir, reader, who, what, "test", organization)
        return await recorded()

    assert fhir.settings.audit_read_window_seconds == 600  # the default
    assert await read(refs[DR_BENALI], [fatima], "feuille de soins") == 1
    assert await read(refs[DR_BENALI], [fatima], "feuille de soins") == 1
    await fhir.runtime.local.close()  # another worker: it knows only the shared mark
    assert await read(refs[DR_BENALI], [fatima], "feuille de soins") == 1
    await fhir.runtime.local.close()  # the cache lost (Redis flushed): recorded again
    await fhir.runtime.cache.delete(
        read_mark(refs[DR_BENALI], None, [fatima], "feuille de soins", "test")
    )
    assert await read(refs[DR_BENALI], [fatima], "feuille de soins") == 2
    assert await read(refs[DR_BENALI], [fatima], "feuille de soins") == 2
    assert await read(refs[DR_BENALI], [fatima], "feuille FSE-1") == 3
    assert await read(refs[DR_BENALI], [sara], "feuille de soins") == 4
    assert await read(refs[DR_BENALI], [sara, fatima], "feuille de soins") == 5
    assert await read(refs[DR_BENALI], [fatima, sara], "feuille de soins") == 5
    assert await read(refs[PHARMACIST], [fatima], "feuille de soins") == 6
    assert await read(refs[PHARMACIST], [fatima], "feuille de soins", refs[PHARMACY]) == 7
    monkeypatch.setattr(fhir.settings, "audit_read_window_seconds", 0.3)
    assert await read(refs[DR_BENALI], [fatima], "ordonnance") == 8
    assert await read(refs[DR_BENALI], [fatima], "ordonnance") == 8
    await asyncio.sleep(0.4)
    assert await read(refs[DR_BENALI], [fatima], "ordonnance") == 9
    monkeypatch.setattr(fhir.settings, "audit_read_window_seconds", 0)  # every page, if asked
    assert await read(refs[DR_BENALI], [fatima], "ordonnance") == 10
    assert await read(refs[DR_BENALI], [fatima], "ordonnance") == 11


async def test_a_reader_is_named_once_for_the_reads_of_a_few_minutes(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """The sentence names the doctor and their pharmacy as their resources say; a doctor's
    pages each leave a read, and their name is not read again for each of them."""
    refs = await load_demo(client)
    fhir = platform.app.state.fhir
    fatima, sara = refs[FATIMA].split("/")[1], refs[SARA].split("/")[1]
    await audit_read(fhir, refs[PHARMACIST], [fatima], "délivrance", "test", refs[PHARMACY])
    with statements(platform.engine) as sent:
        await audit_read(fhir, refs[PHARMACIST], [sara], "délivrance", "test", refs[PHARMACY])
    assert not [s for s in sent if s.reads("Practitioner") or s.reads("Organization")]
    found = (await client.get("/fhir/AuditEvent", params={"agent": refs[PHARMACIST]})).json()
    sentences = [e["resource"]["text"]["div"] for e in found["entry"]]
    assert len(sentences) == 2 and len(set(s.split(",", 1)[1] for s in sentences)) == 1
    pharmacist = (await client.get(f"/fhir/{refs[PHARMACIST]}")).json()
    pharmacy = (await client.get(f"/fhir/{refs[PHARMACY]}")).json()
    assert all(name_of(pharmacist) in s and name_of(pharmacy) in s for s in sentences)
