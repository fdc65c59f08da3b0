"""The AuditEvent every read of an insured's data leaves: stored without being validated again
per read (it costs a page view ~0.5 ms), so its shapes are proven valid here, once."""

from __future__ import annotations

import httpx
import pytest

from fse.audit import audit_read
from fse.resources import validation_issues
from tests.conftest import Platform
from tests.reimbursement.demo import DR_BENALI, FATIMA, PHARMACIST, PHARMACY, SARA, load_demo


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
