"""The medicine a doctor chooses, in the browser's terms: the suggestions fill the product's
name (not a bare EAN), the form and the review page say which product was understood, and the
JSON search behind the suggestions opens only to those who prescribe or dispense."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx

from fse.security.users import Role
from tests.conftest import Platform
from tests.pharmacy.test_pages import signed_in
from tests.prescriber.test_pages import doctor
from tests.reimbursement.demo import DR_BENALI, FATIMA, PHARMACIST, load_demo

BIOMOX_1G = "BIOMOX 1 G COMPRIME DISPERSIBLE, 1 BOITE 12 COMPRIME"


async def test_suggestions_fill_the_name_and_the_review_names_the_product(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    patient = refs[FATIMA].split("/")[1]
    form = await browser.get("/medecin/feuille", params={"patient": patient})
    suggestions = form.text.split('<datalist id="medicaments">')[1].split("</datalist>")[0]
    # 3,458 reimbursable products: too many to send with every form; the script asks
    # /medicaments as the doctor types, and without it the typed text is resolved on review.
    assert re.findall(r'<option value="([^"]*)"', suggestions) == []
    assert '<script src="/static/fse/suggestions.js" defer></script>' in form.text
    assert (await browser.get("/static/fse/suggestions.js")).status_code == 200
    fields = {
        "csrf": csrf,
        "patient": patient,
        "med-1-produit": "BIOMOX 1 G 12",  # typed: the name with its strength and pack
        "med-1-posologie": "1 gélule matin et soir",
        "med-1-duree": "6",
    }
    incomplete = await browser.post("/medecin/feuille", data={**fields, "action": "relire"})
    assert incomplete.status_code == 422  # boxes missing: the form again, product understood
    assert f"Médicament retenu : {BIOMOX_1G}" in incomplete.text
    fields["med-1-quantite"] = "2"
    asked = await browser.post("/medecin/feuille", data={**fields, "action": "relire"})
    assert asked.status_code == 303, asked.text
    review = await browser.get(asked.headers["location"])
    assert f"<strong>{BIOMOX_1G}</strong> (AMOXICILLINE, générique" in review.text
    ambiguous = await browser.post(
        "/medecin/feuille", data={**fields, "med-1-produit": "amoxicilline 1 g", "action": "relire"}
    )
    assert ambiguous.status_code == 422
    said = ambiguous.text.split('id="med-1-produit-erreur"')[1][:900]
    assert "Plusieurs médicaments correspondent (" in said and "et 62 autre(s)" in said
    assert "500 MG" not in said


async def test_the_search_answers_the_product_the_form_will_take_page_by_page(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await doctor(platform, client, browser)
    found = await browser.get("/medicaments", params={"q": "BIOMOX 1 G 12"})
    assert found.status_code == 200 and found.headers["content-type"] == "application/json"
    body = found.json()
    assert body["choice"]["label"] == BIOMOX_1G and body["choice"]["kind"] == "générique"
    assert body["choice"]["ppv_text"] == "56,10\u00a0MAD" and body["message"] == ""
    assert body["said"] == (
        f"Médicament retenu : {BIOMOX_1G} — AMOXICILLINE, générique, PPV 56,10\u00a0MAD"
    )
    assert body["choice"]["value"] == BIOMOX_1G  # what the suggestion fills the field with
    several = (await browser.get("/medicaments", params={"q": "biomox 1 g"})).json()
    assert several["choice"] is None and several["message"].startswith("Plusieurs")
    assert {r["label"] for r in several["results"]} == {
        BIOMOX_1G,
        "BIOMOX 1 G COMPRIME DISPERSIBLE, 1 BOITE 24 COMPRIME",
    }
    unknown = (await browser.get("/medicaments", params={"q": "andol c"})).json()
    assert unknown["choice"]["pbr"] is None and unknown["choice"]["pbr_text"] == "non publié"
    first = (await browser.get("/medicaments", params={"q": "amoxicilline"})).json()
    assert first["total"] == 243 and len(first["results"]) == 20 and first["pages"] == 13
    assert first["next"] == f"/medicaments?q={quote('amoxicilline')}&page=2"
    last = (await browser.get("/medicaments?q=amoxicilline&page=13")).json()
    assert len(last["results"]) == 243 - 12 * 20 and last["next"] is None
    second = (await browser.get(first["next"])).json()
    assert not {r["ean"] for r in first["results"]} & {r["ean"] for r in second["results"]}
    # A page that is no whole number of ASCII digits is the first page, never a 500.
    for odd in ("\u00b2", "\u0663", "-1", "0", "99999999999", "abc", ""):
        answer = await browser.get("/medicaments", params={"q": "boîte", "page": odd})
        assert answer.status_code == 200 and answer.json()["page"] == 1, odd


async def test_the_search_opens_to_doctors_and_pharmacists_only(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as anonymous:
        answer = await anonymous.get("/medicaments", params={"q": "zovirax 200"})
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/connexion?suite=")
    people = await load_demo(client)
    for role, practitioner, status in (
        (Role.PHARMACIST, people[PHARMACIST], 200),
        (Role.PRESCRIBER, people[DR_BENALI], 200),
        (Role.CNSS_AGENT, None, 403),
        (Role.LAB, None, 403),
    ):
        async with signed_in(platform, practitioner, role) as http:
            answer = await http.get("/medicaments", params={"q": "zovirax 200"})
            assert answer.status_code == status, (role, answer.text)
            if status == 200:
                assert answer.json()["choice"]["ean"] == "6118001141531"
            else:
                assert "Accès refusé" in answer.text
