"""The review page's pre-settlement: before signing, the doctor sees what the settlement will
decide (base, rate, refund, patient share, the reason a line is refused, who is paid and when),
computed by the settlement itself with nothing written; fees far above the tariff never pass."""

from __future__ import annotations

import html
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from fse.errors import ErrorCode
from fse.web.formats import mad
from prescriber.presettlement import presettle
from tests.conftest import Platform
from tests.prescriber.test_pages import doctor
from tests.prescriber.test_sheets import NOW, form, sign_as_benali, visit_of
from tests.reimbursement.demo import DR_BENALI, FASSI, FATIMA, act, claim, load_demo

SID = "https://fse.cnss.ma/fhir/sid"
ADJUDICATION = ("submitted", "eligible", "eligpercent", "benefit", "copay")


def cells(page: str, section: str) -> list[list[str]]:
    """The body rows of the table in ``<section id=section>``, as the text of each cell."""
    found = page.split(f'id="{section}"', 1)[1].split("</section>", 1)[0]
    body = found.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [
            re.sub(r"[ \t\r\n]+", " ", html.unescape(re.sub(r"<[^>]+>", " ", cell))).strip()
            for cell in row
        ]
        for row in (
            re.findall(r"<td>(.*?)</td>", tr, re.S)
            for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
        )
    ]


def figures(response: dict[str, Any]) -> list[list[str]]:
    """The ClaimResponse's lines as the review shows them: honoraires, base, rate, refund,
    patient share."""
    rows = []
    for item in response["item"]:
        amounts = {a["category"]["coding"][0]["code"]: a for a in item["adjudication"]}
        value = {
            code: Decimal(str(amounts[code].get("amount", amounts[code]).get("value")))
            for code in ADJUDICATION
        }
        rows.append(
            [
                mad(value["submitted"]),
                mad(value["eligible"]),
                f"{value['eligpercent']:.0f} %",
                mad(value["benefit"]),
                mad(value["copay"]),
            ]
        )
    return rows


def comparable(response: dict[str, Any]) -> dict[str, Any]:
    """What the settlement decides, without what names the stored resources or the moment."""
    volatile = ("id", "meta", "identifier", "created", "request", "text")
    return {k: v for k, v in response.items() if k not in volatile}


async def written(platform: Platform, client: httpx.AsyncClient) -> dict[str, int]:
    """What a sheet and its settlement write (reading an insured writes AuditEvents)."""
    counts = await platform.row_counts()
    found = {
        t: counts[t] for t in ("settlements", "settlement_lines", "ledger_entries", "outbox_events")
    }
    for kind in ("Claim", "ClaimResponse", "ExplanationOfBenefit", "Encounter", "ChargeItem"):
        answer = await client.get(f"/fhir/{kind}", params={"_total": "accurate"})
        found[kind] = answer.json()["total"]
    return found


async def review_of(
    browser: httpx.AsyncClient, csrf: str, patient: str, **fields: str
) -> tuple[httpx.Response, dict[str, str]]:
    posted = {"csrf": csrf, "patient": patient, **form(**fields)}
    asked = await browser.post("/medecin/feuille", data={**posted, "action": "relire"})
    assert asked.status_code == 303, asked.text
    return await browser.get(asked.headers["location"]), posted


async def signed_response(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, review: str, posted: dict[str, str]
) -> dict[str, Any]:
    key = re.search(r'name="cle" value="([^"]+)"', review)
    assert key
    signed = await browser.post(
        "/medecin/feuille", data={**posted, "cle": key[1], "action": "signer"}
    )
    assert signed.status_code == 303, signed.text
    number = signed.headers["location"].rsplit("/", 1)[1]
    found = (await client.get("/fhir/Claim", params={"identifier": f"{SID}/fse|{number}"})).json()
    claim_id = found["entry"][0]["resource"]["id"]
    answers = await client.get("/fhir/ClaimResponse", params={"request": f"Claim/{claim_id}"})
    return dict(answers.json()["entry"][0]["resource"])


async def test_the_review_shows_what_signing_will_pay_and_the_sheet_pays_it(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    patient = refs[FATIMA].split("/")[1]
    before = await written(platform, client)
    review, posted = await review_of(
        browser, csrf, patient, acte_1_code="C", acte_1_honoraires="150"
    )
    assert review.status_code == 200
    shown = cells(review.text, "preliquidation")
    # C billed 150.00 on the TNR 80.00 at 70 %: 56.00 back, the insured keeps 94.00.
    assert shown == [
        ["C", "150,00\u00a0MAD", "80,00\u00a0MAD", "70 %", "56,00\u00a0MAD", "94,00\u00a0MAD", ""]
    ]
    assert "La CNSS rembourse 56,00\u00a0MAD à l'assuré, virement le" in review.text
    assert await written(platform, client) == before  # the pre-settlement wrote nothing
    response = await signed_response(browser, client, review.text, posted)
    assert [row[1:6] for row in shown] == figures(response)
    payment = datetime.fromisoformat(response["payment"]["date"])
    assert f"virement le {payment:%d/%m/%Y}" in review.text


async def test_a_gp_billing_cs_learns_before_signing_that_it_will_be_refused(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)  # Dr Benali is a GP
    review, posted = await review_of(
        browser,
        csrf,
        refs[FATIMA].split("/")[1],
        acte_1_code="C",
        acte_1_honoraires="150",
        acte_2_code="Cs",
        acte_2_honoraires="250",
    )
    shown = cells(review.text, "preliquidation")
    assert shown[1][0] == "Cs" and shown[1][4] == "0,00\u00a0MAD"
    assert shown[1][5] == "250,00\u00a0MAD" and "Professionnel non habilité" in shown[1][6]
    assert "1 ligne(s) seront refusées par la CNSS si vous signez" in review.text
    response = await signed_response(browser, client, review.text, posted)
    assert [row[1:6] for row in shown] == figures(response)
    reason = response["item"][1]["adjudication"][3]["reason"]["coding"][0]["display"]
    assert reason == "Professionnel non habilité"


async def test_a_preview_equals_the_claim_response_of_the_settlement_on_signing(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    app = platform.app.state
    for patient, fields, exonerated in (
        (FATIMA, form(acte_1_code="C", acte_1_honoraires="150", acte_2_code="Cs"), False),
        (FATIMA, form(acte_1_code="K", acte_1_coef="15", acte_1_honoraires="400"), False),
        (FASSI, form(acte_1_code="C", acte_1_honoraires="80", acte_1_ald="on"), True),
    ):
        if "acte-2-code" in fields:
            fields["acte-2-honoraires"] = "250"
        visit = visit_of(fields, exonerated)
        assert visit.ok, visit.errors
        patient_id = refs[patient].split("/")[1]
        preview = await presettle(app.fhir, app.settlement, refs[DR_BENALI], patient_id, visit, NOW)
        assert preview is not None and not preview.error, preview
        sheet = await sign_as_benali(platform, refs, patient, visit)
        assert sheet.response is not None
        assert comparable(preview.response) == comparable(sheet.response)


@pytest.mark.parametrize("fee", ["99999999", "1e9"])
async def test_a_fee_far_above_the_tariff_does_not_pass_review(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient, fee: str
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    before = await written(platform, client)
    fields = {
        "csrf": csrf,
        "patient": refs[FATIMA].split("/")[1],
        "acte-1-code": "C",
        "acte-1-honoraires": fee,
    }
    for action in ("relire", "signer"):
        page = await browser.post("/medecin/feuille", data={**fields, "action": action})
        assert page.status_code == 422
        assert 'id="acte-1-honoraires-erreur"' in page.text
        assert "au-delà du plafond de 1\u202f500,00\u00a0MAD pour C" in page.text
        assert "Relecture avant signature" not in page.text
    assert await written(platform, client) == before


@pytest.mark.parametrize(
    ("fee", "code"),
    [("99999999", ErrorCode.FEE_ABOVE_CEILING), ("1e9", ErrorCode.VALUE_OUT_OF_RANGE)],
)
async def test_submit_refuses_a_fee_far_above_the_tariff(
    platform: Platform, client: httpx.AsyncClient, fee: str, code: ErrorCode
) -> None:
    refs = await load_demo(client)
    sheet = claim(refs, FATIMA, [act("C", "80.00"), act("C", fee)])
    before = await platform.row_counts()
    answer = await client.post("/fhir/Claim/$submit", json=sheet)
    assert answer.status_code == 422, answer.text
    issue = answer.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == code.value
    assert issue["expression"][0].startswith("Claim.item[1].net")
    if code == ErrorCode.FEE_ABOVE_CEILING:
        assert "plafond de 1500.00 MAD pour C" in issue["diagnostics"]
    assert await platform.row_counts() == before
