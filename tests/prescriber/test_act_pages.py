"""The NGAP act a doctor names on a line of the sheet: found by code or label, its coefficient
the default, recorded beside the key letter that prices it, and shown on the signed sheet."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import httpx

from fse.security.users import Role
from tests.conftest import Platform
from tests.pharmacy.test_pages import signed_in
from tests.reimbursement.demo import DR_ELIDRISSI, FATIMA, PHARMACIST, load_demo

NGAP = "https://fse.cnss.ma/fhir/CodeSystem/ngap"
ACTS = "https://fse.cnss.ma/fhir/CodeSystem/ngap-actes"
COEFFICIENT = "https://fse.cnss.ma/fhir/StructureDefinition/ngap-coefficient"


async def sheet_form(http: httpx.AsyncClient, patient: str) -> dict[str, str]:
    page = await http.get("/medecin/feuille", params={"patient": patient})
    assert page.status_code == 200
    assert 'id="acte-1-ngap"' in page.text and 'data-suggest="/actes"' in page.text
    assert '<script src="/static/fse/suggestions.js" defer></script>' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    return {"csrf": csrf[1], "patient": patient, "action": "relire"}


def error_of(page: str, name: str) -> str:
    found = re.search(rf'<p class="error" id="{name}-erreur">([^<]*)</p>', page)
    assert found, name
    return html.unescape(found[1])


async def test_an_act_chosen_by_code_is_recorded_beside_its_key_letter(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    patient = refs[FATIMA].split("/")[1]
    async with signed_in(platform, refs[DR_ELIDRISSI], Role.PRESCRIBER) as http:
        fields = {
            **await sheet_form(http, patient),
            "acte-1-ngap": "j329",
            "acte-1-code": "K",  # the key letter is the doctor's: the list gives none
            "acte-1-honoraires": "1600",
        }
        asked = await http.post("/medecin/feuille", data=fields)
        assert asked.status_code == 303, asked.text
        review = html.unescape((await http.get(asked.headers["location"])).text)
        # The coefficient is the list's (70), the act named with its label.
        assert "K70 — acte J329 : Appendicectomie à ciel ouvert — 1\u202f600,00\u00a0MAD" in review
        key = re.search(r'name="cle" value="([^"]+)"', review)
        assert key
        signed = await http.post(
            "/medecin/feuille", data={**fields, "cle": key[1], "action": "signer"}
        )
        assert signed.status_code == 303, signed.text
        number = signed.headers["location"].rsplit("/", 1)[1]
        result = html.unescape((await http.get(signed.headers["location"])).text)
        assert "acte J329 : Appendicectomie à ciel ouvert" in result
        copy = html.unescape((await http.get(f"/medecin/feuille/{number}/copie")).text)
        assert "acte J329 : Appendicectomie à ciel ouvert" in copy
    acte = f"https://fse.cnss.ma/fhir/sid/acte|{number}-A1"
    charges = (await client.get("/fhir/ChargeItem", params={"identifier": acte})).json()
    (charge,) = [e["resource"] for e in charges["entry"]]
    both = [
        {"system": NGAP, "code": "K"},
        {"system": ACTS, "code": "J329", "display": "Appendicectomie à ciel ouvert"},
    ]
    assert charge["code"]["coding"] == both
    assert charge["extension"] == [{"url": COEFFICIENT, "valueDecimal": 70.0}]
    bundle = await client.get(
        "/fhir/Claim", params={"identifier": f"https://fse.cnss.ma/fhir/sid/fse|{number}"}
    )
    (item,) = bundle.json()["entry"][0]["resource"]["item"]
    assert item["productOrService"]["coding"] == both
    response = (await client.get("/fhir/ClaimResponse", params={"patient": refs[FATIMA]})).json()
    benefit = response["entry"][0]["resource"]["total"][2]["amount"]["value"]
    assert benefit == 1102.5  # K70 = 1575.00, 70 % x min(1600, 1575): priced by the key letter


async def test_the_form_asks_for_what_the_list_cannot_give(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    patient = refs[FATIMA].split("/")[1]
    async with signed_in(platform, refs[DR_ELIDRISSI], Role.PRESCRIBER) as http:
        base = await sheet_form(http, patient)

        async def refused(**line: str) -> str:
            fields = {f"acte-1-{k}": v for k, v in line.items()}
            page = await http.post("/medecin/feuille", data={**base, **fields})
            assert page.status_code == 422, page.text
            return page.text

        unknown = await refused(ngap="Q999", code="K30", honoraires="700")
        assert error_of(unknown, "acte-1-ngap").startswith(
            "Aucun acte de la liste NGAP ne correspond : saisissez son code (ex. J329)"
        )
        assert 'value="Q999"' in unknown  # what was typed is kept
        no_key = await refused(ngap="J329", honoraires="1600")
        assert error_of(no_key, "acte-1-code") == (
            "Indiquez la lettre clé de l'acte J329 (K, Z, D…) : la liste NGAP ne la donne pas."
        )
        assert "Acte retenu : J329 — Appendicectomie à ciel ouvert · coefficient 70" in (
            html.unescape(no_key)
        )
        above = await refused(ngap="J203", code="K90", honoraires="2025")
        assert error_of(above, "acte-1-coef") == (
            "Coefficient 90 au-delà de 82, celui de l'acte J203 dans la liste NGAP."
        )
        flagged = await refused(ngap="D542", code="K", honoraires="2000")
        assert error_of(flagged, "acte-1-coef") == (
            "Coefficient à saisir pour l'acte D542 : la liste imprime « 00 30 », signalé douteux "
            "dans la source."
        )
        several = await refused(ngap="appendicectomie", code="K", honoraires="1600")
        assert "Plusieurs actes correspondent (J329" in error_of(several, "acte-1-ngap")


async def test_the_search_answers_the_act_the_form_will_take_page_by_page(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    async with signed_in(platform, refs[DR_ELIDRISSI], Role.PRESCRIBER) as http:
        found = await http.get("/actes", params={"q": "J329"})
        assert found.status_code == 200 and found.headers["content-type"] == "application/json"
        body = found.json()
        assert body["choice"]["code"] == "J329" and body["choice"]["default"] == "70"
        assert body["choice"]["chapter"] == "J" and body["message"] == ""
        assert body["said"] == (
            "Acte retenu : J329 — Appendicectomie à ciel ouvert · coefficient 70 · "
            "chapitre J : Actes portant sur l'abdomen"
        )
        several = (await http.get("/actes", params={"q": "appendicectomie"})).json()
        assert several["choice"] is None and several["message"].startswith("Plusieurs")
        assert [r["code"] for r in several["results"]] == ["J329", "J330", "Z300"]
        ambiguous = (await http.get("/actes", params={"q": "T100"})).json()
        assert [r["default"] for r in ambiguous["results"]] == ["", ""]  # no limit, no default
        assert ambiguous["results"][1]["value"].startswith("Bilan radiologique complet du coude")
        first = (await http.get("/actes", params={"q": "j3"})).json()  # J300 .. J335: 36 acts
        assert first["total"] == 36 and len(first["results"]) == 20 and first["pages"] == 2
        assert first["results"][0]["code"] == "J300" and first["choice"] is None
        assert first["next"] == f"/actes?q={quote('j3')}&page=2"
        second = (await http.get(first["next"])).json()
        assert len(second["results"]) == 16 and second["next"] is None
        assert not {r["code"] for r in first["results"]} & {r["code"] for r in second["results"]}
        for odd in ("\u00b2", "-1", "0", "99999999999", "abc"):
            answer = await http.get("/actes", params={"q": "j3", "page": odd})
            assert answer.status_code == 200 and answer.json()["page"] == 1, odd


async def test_the_act_search_opens_to_doctors_only(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as anonymous:
        answer = await anonymous.get("/actes", params={"q": "J329"})
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/connexion?suite=")
    people = await load_demo(client)
    for role, practitioner, status in (
        (Role.PRESCRIBER, people[DR_ELIDRISSI], 200),
        (Role.PHARMACIST, people[PHARMACIST], 403),
        (Role.CNSS_AGENT, None, 403),
    ):
        async with signed_in(platform, practitioner, role) as http:
            answer = await http.get("/actes", params={"q": "J329"})
            assert answer.status_code == status, (role, answer.text)
            if status == 403:
                assert "Accès refusé" in answer.text
