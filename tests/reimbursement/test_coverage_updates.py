"""Coverage updates pushed by CNSS systems through the FHIR API take effect for care on or after
their date, and not before (issue 7: reference data from CNSS)."""

from __future__ import annotations

import httpx

from tests.conftest import Platform
from tests.reimbursement.demo import COVERAGE, FATIMA, act, adjudication, claim, load_demo

SUBMIT = "/fhir/Claim/$submit"
RIGHTS = "https://fse.cnss.ma/fhir/StructureDefinition/rights-status"


async def test_rights_closed_from_a_date_apply_to_care_from_that_date(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    coverage = (await client.get(f"/fhir/{refs[COVERAGE[FATIMA]]}")).json()
    # CNSS: contributions unpaid from 26/11: the open period ends on 25/11 (If-Match on the
    # version read) and a closed period starts the day after.
    coverage["period"]["end"] = "2026-11-25"
    updated = await client.put(
        f"/fhir/{refs[COVERAGE[FATIMA]]}",
        json=coverage,
        headers={"If-Match": f'W/"{coverage["meta"]["versionId"]}"'},
    )
    assert updated.status_code == 200, updated.text
    closed = {k: v for k, v in coverage.items() if k not in ("id", "meta", "identifier", "period")}
    closed["identifier"] = [
        {"system": "https://fse.cnss.ma/fhir/sid/couverture", "value": "123456789-00-P2"}
    ]
    closed["period"] = {"start": "2026-11-26"}
    closed["extension"] = [
        {
            "url": RIGHTS,
            "valueCoding": {
                "system": "https://fse.cnss.ma/fhir/CodeSystem/rights-status",
                "code": "fermes-cotisations",
            },
        }
    ]
    created = await client.post("/fhir/Coverage", json=closed)
    assert created.status_code == 201, created.text
    before = await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-25")]))
    after = await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-26")]))
    assert before.json()["outcome"] == "complete"
    assert adjudication(before.json(), 0, "benefit") == 56.0  # care before the change: paid
    assert after.json()["outcome"] == "error"
    assert after.json()["error"][0]["code"]["coding"][0]["code"] == "R01"  # rights closed
