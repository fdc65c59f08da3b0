"""The pharmacist's lookup: open lines only, remaining quantities, nothing clinical; audited."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime

import httpx
import pytest

from pharmacy.lookup import OpenLine, open_lines
from prescriber.cancel import cancel_sheet
from prescriber.history import load_sheet
from prescriber.sheets import SheetRefused
from tests.conftest import Platform
from tests.pharmacy.helpers import counter, order
from tests.prescriber.test_sheets import FULL_VISIT, sign_as_benali, visit_of
from tests.reimbursement.demo import DR_BENALI, FATIMA, PHARMACY, load_demo

TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


async def signed_for_fatima(platform: Platform, client: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    refs = await load_demo(client)
    sheet = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT))
    return refs, sheet


async def lookup(platform: Platform, refs: dict[str, str], text: str) -> list[OpenLine]:
    return await open_lines(
        platform.app.state.fhir, text, TODAY, "Practitioner/pharmacist", refs[PHARMACY]
    )


async def test_open_lines_by_cin_by_sheet_number_and_by_immatriculation(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await signed_for_fatima(platform, client)
    by_cin = await lookup(platform, refs, "be123456")
    assert sorted(line.medicine for line in by_cin) == sorted(
        [
            "ZOVIRAX 200 MG, 1 BOITE 25 COMPRIME",
            "CICLOVIRAL 200 MG, 1 BOITE 25 COMPRIME",
            "CETAMYL 500 MG, 1 BOITE 20 COMPRIME",
        ]
    )
    by_sheet = await lookup(platform, refs, sheet.number)
    assert {line.sheet for line in by_sheet} == {sheet.number} and len(by_sheet) == 2
    assert len(await lookup(platform, refs, "123456789")) == 3
    ciclo = next(line for line in by_sheet if line.medicine.startswith("CICLOVIRAL"))
    assert (ciclo.prescribed, ciclo.remaining, ciclo.substitutable) == (2, 2, False)
    assert ciclo.prescriber == "Karim Benali" and ciclo.valid_until == date(2027, 2, 20)
    fields = {f.name for f in dataclasses.fields(OpenLine)}
    assert not fields & {"reason", "condition", "diagnosis", "note"}  # nothing clinical
    audits = (await client.get("/fhir/AuditEvent")).json()["entry"]
    agents = [a["who"]["reference"] for e in audits for a in e["resource"]["agent"]]
    assert refs[PHARMACY] in agents


async def test_dispensed_cancelled_and_expired_lines_are_not_offered(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await signed_for_fatima(platform, client)
    ciclo = next(
        line
        for line in await lookup(platform, refs, sheet.number)
        if line.medicine.startswith("CICLO")
    )
    desk = await counter(platform, refs)
    await desk.dispense(ciclo.patient_id, order(ciclo, 1, price="209.00"), when=NOW)
    after = {line.request_id: line.remaining for line in await lookup(platform, refs, sheet.number)}
    assert after[ciclo.request_id] == 1  # partial: one box left
    fresh = dataclasses.replace(ciclo, remaining=after[ciclo.request_id])
    second = await desk.dispense(fresh.patient_id, order(fresh, 1, price="209.00"), when=NOW)
    assert not second.replayed
    assert ciclo.request_id not in {
        line.request_id for line in await lookup(platform, refs, sheet.number)
    }
    view = await load_sheet(platform.app.state.fhir, sheet.number)
    assert view is not None
    expired = await open_lines(platform.app.state.fhir, "BE123456", date(2027, 3, 1), "x", None)
    # The sheet's lines were valid until 2027-02-20; the demo line has no end date and stays.
    assert [line.sheet for line in expired] == ["RX-2026-000001"]
    with pytest.raises(SheetRefused):  # a line was dispensed: the sheet stays
        await cancel_sheet(platform.app.state.fhir, view, refs[DR_BENALI], datetime.now(UTC))
    other = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT), True)
    fhir = platform.app.state.fhir
    other_view = await load_sheet(fhir, other.number)
    assert other_view is not None
    await cancel_sheet(fhir, other_view, refs[DR_BENALI], datetime.now(UTC))
    assert await lookup(platform, refs, other.number) == []


async def test_the_insured_reads_who_looked_at_their_prescriptions_in_plain_french(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, _ = await signed_for_fatima(platform, client)
    desk = await counter(platform, refs)
    await desk.lines("BE123456")
    log = await client.get(
        "/fhir/AuditEvent", params={"patient": refs[FATIMA], "_sort": "-date", "_count": "1"}
    )
    sentence = log.json()["entry"][0]["resource"]["text"]["div"]
    assert re.fullmatch(
        r'<div xmlns="http://www.w3.org/1999/xhtml">Le \d\d/\d\d/\d{4} à \d\d:\d\d, '
        r"Nadia Berrada \(Pharmacie Al Amal\) a consulté vos données : "
        r"délivrance : recherche BE\*\*\*\*56\.</div>",
        sentence,
    ), sentence
