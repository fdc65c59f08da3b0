"""Before "Délivrer", the pharmacist sees what the settlement will decide: per line the price,
base, rate, CNSS and insured shares, what is paid at the counter, and the lines the engine will
hold for a CNSS control. Computed by the settlement itself, with nothing written."""

from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import Any

import httpx

from fse import fhir_json
from fse.web.formats import mad
from pharmacy.dispense import DispenseOrder
from pharmacy.numbers import claim_number
from pharmacy.preview import preview_dispense
from tests.conftest import Platform
from tests.pharmacy.helpers import AT, CICLOVIRAL, counter, fatima_sheet, line, order
from tests.pharmacy.test_pages import form_of, nothing_was_stored, request_id_of, signed_in
from tests.prescriber.test_presettlement import comparable
from tests.prescriber.test_sheets import form, sign_as_benali, visit_of
from tests.reimbursement.demo import FATIMA, PHARMACIST, load_demo

SID = "https://fse.cnss.ma/fhir/sid"
HERCEPTIN = "6118001050116"  # PPV 6,890.00: above the costly-medicine threshold (2,000)
HELD = "Cette ligne sera retenue pour contrôle CNSS : rien n'est payé avant la décision."


def preview_rows(page: str) -> list[list[str]]:
    """The cells of the preview table (``<section class="preview">``)."""
    section = page.split('<section class="preview"', 1)[1].split("</section>", 1)[0]
    body = section.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [
            re.sub(r"[ \t\r\n]+", " ", html.unescape(re.sub(r"<[^>]+>", " ", cell))).strip()
            for cell in re.findall(r"<td>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


async def engine_answer(client: httpx.AsyncClient, number: str) -> dict[str, Any]:
    """The ClaimResponse of a dispense's claim (the care sheet ``claim_number(number)``)."""
    sheet = claim_number(number)
    found = (await client.get("/fhir/Claim", params={"identifier": f"{SID}/fse|{sheet}"})).json()
    claim_id = found["entry"][0]["resource"]["id"]
    answers = await client.get("/fhir/ClaimResponse", params={"request": f"Claim/{claim_id}"})
    return dict(fhir_json.loads(answers.content)["entry"][0]["resource"])  # amounts exact


def amounts(response: dict[str, Any]) -> list[list[str]]:
    """Price, base, rate, CNSS share and insured share of each line, as the page writes them."""
    rows = []
    for item in response["item"]:
        found = {a["category"]["coding"][0]["code"]: a for a in item["adjudication"]}

        def money(code: str, found: dict[str, Any] = found) -> str:
            return mad(Decimal(str(found[code]["amount"]["value"])))

        rate = f"{Decimal(str(found['eligpercent']['value'])):.0f} %"
        rows.append([money("submitted"), money("eligible"), rate, money("benefit"), money("copay")])
    return rows


async def test_the_pharmacist_checks_the_amounts_then_dispenses_exactly_them(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    async with signed_in(platform, refs[PHARMACIST]) as http:
        page = await http.get("/pharmacie/recherche", params={"q": sheet.number})
        assert "Vérifier les montants" in page.text
        fields = form_of(page.text)
        ciclo = request_id_of(fields, CICLOVIRAL, page.text)
        fields.update({f"qte-{ciclo}": "1", "tiers_payant": "on"})
        before = await platform.row_counts()
        checked = await http.post("/pharmacie/delivrer", data={**fields, "action": "verifier"})
        assert checked.status_code == 200, checked.text
        await nothing_was_stored(platform, before)  # nothing dispensed
        rows = preview_rows(checked.text)
        # CICLOVIRAL at its PPV 209.00 = PBR, 70 %: CNSS pays 146.30, the insured 62.70.
        assert rows == [
            [
                "CICLOVIRAL 200 MG, 1 BOITE 25 COMPRIME",
                "1",
                "209,00\u00a0MAD",
                "209,00\u00a0MAD",
                "70 %",
                "146,30\u00a0MAD",
                "62,70\u00a0MAD",
                "",
            ]
        ]
        assert "À payer au comptoir : 62,70\u00a0MAD" in checked.text
        assert "Tiers payant : la CNSS paie 146,30\u00a0MAD à la pharmacie, virement le" in (
            checked.text
        )
        confirmed = {**form_of(checked.text), f"qte-{ciclo}": "1", "tiers_payant": "on"}
        done = await http.post("/pharmacie/delivrer", data={**confirmed, "action": "delivrer"})
        assert done.status_code == 303, done.text
    response = await engine_answer(client, done.headers["location"].rsplit("/", 1)[1])
    assert [row[2:7] for row in rows] == amounts(response)


async def test_a_line_the_engine_will_hold_is_announced_before_dispensing(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    visit = visit_of(
        form(
            med_1_produit=HERCEPTIN,
            med_1_posologie="1 flacon",
            med_1_duree="21",
            med_1_quantite="1",
        )
    )
    sheet = await sign_as_benali(platform, refs, FATIMA, visit)  # no ALD: a costly medicine held
    async with signed_in(platform, refs[PHARMACIST]) as http:
        page = await http.get("/pharmacie/recherche", params={"q": sheet.number})
        fields = form_of(page.text)
        hercepta = request_id_of(fields, HERCEPTIN, page.text)
        fields.update({f"qte-{hercepta}": "1", "tiers_payant": "on"})
        checked = await http.post("/pharmacie/delivrer", data={**fields, "action": "verifier"})
        assert checked.status_code == 200
        assert HELD in checked.text
        assert "ne sera payée à la pharmacie qu'après la décision du contrôle CNSS" in checked.text
        assert "virement le" not in checked.text.split('<section class="preview"')[1]
        # "Délivrer" without having seen it: the preview comes first, nothing is dispensed.
        before = await platform.row_counts()
        direct = await http.post("/pharmacie/delivrer", data={**fields, "action": "delivrer"})
        assert direct.status_code == 409
        assert "Rien n'a été délivré" in html.unescape(direct.text) and HELD in direct.text
        await nothing_was_stored(platform, before)
        # Pressed again on the order shown: dispensed, and held as announced.
        seen = {**form_of(direct.text), f"qte-{hercepta}": "1", "tiers_payant": "on"}
        done = await http.post("/pharmacie/delivrer", data={**seen, "action": "delivrer"})
        assert done.status_code == 303, done.text
    response = await engine_answer(client, done.headers["location"].rsplit("/", 1)[1])
    assert response["outcome"] == "queued"
    (shown,) = [row[2:7] for row in preview_rows(checked.text)]
    (answered,) = amounts(response)
    # The CNSS share of a held line is no promise: it says so beside the amount proposed.
    assert (
        shown[3]
        == f"en attente de contrôle {answered[3]} proposé, payé seulement si la CNSS libère"
    )
    assert shown[:3] + shown[4:] == answered[:3] + answered[4:]


async def test_a_dispense_preview_equals_the_claim_response_of_the_dispense(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    found = await desk.lines(sheet.number)
    zovirax, ciclo = line(found, "ZOVIRAX"), line(found, "CICLOVIRAL")
    app = platform.app.state
    for wanted in (
        DispenseOrder(zovirax.patient_id, (order(zovirax, 1, CICLOVIRAL, "209.00"),)),
        DispenseOrder(ciclo.patient_id, (order(ciclo, 1, price="209.00"),), tiers_payant=True),
    ):
        preview = await preview_dispense(app.fhir, desk.settlement(), desk.pharmacist, wanted, AT)
        done = await desk.dispense(
            wanted.patient_id, *wanted.lines, tiers_payant=wanted.tiers_payant
        )
        assert comparable(preview.response) == comparable(await engine_answer(client, done.number))
