"""The doctor's visit in the browser's terms (forms, redirects), without JavaScript."""

from __future__ import annotations

import html
import re
import uuid

import httpx

from fse.security.users import Role, create_user
from tests.conftest import Platform
from tests.fse.web.test_login import PASSWORD, login
from tests.reimbursement.demo import AMINE, DR_BENALI, FATIMA, TAZI, load_demo
from tests.reimbursement.test_review_and_payments import payments

ZOVIRAX = "6118001141531"


async def doctor(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> tuple[dict[str, str], str]:
    refs = await load_demo(client)
    name = f"dr.{uuid.uuid4().hex[:8]}"
    await create_user(
        platform.engine, name, PASSWORD, Role.PRESCRIBER, "Dr Benali", refs[DR_BENALI]
    )
    assert (await login(browser, name)).status_code == 303
    page = await browser.get("/medecin/feuille", params={"patient": refs[FATIMA].split("/")[1]})
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    return refs, csrf[1]


async def test_review_then_sign_then_see_the_amounts(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    fields = {
        "csrf": csrf,
        "patient": refs[FATIMA].split("/")[1],
        "acte-1-code": "C",
        "acte-1-honoraires": "150",
        "med-1-produit": ZOVIRAX,
        "med-1-posologie": "1 comprimé 5 fois par jour",
        "med-1-duree": "5",
        "med-1-quantite": "1",
    }
    asked = await browser.post("/medecin/feuille", data={**fields, "action": "relire"})
    assert asked.status_code == 303  # the review is a page of its own, that Back comes to
    review = await browser.get(asked.headers["location"])
    assert review.status_code == 200 and "Relecture avant signature" in review.text
    assert "ZOVIRAX" in review.text
    key = re.search(r'name="cle" value="([^"]+)"', review.text)
    assert key  # the reviewed form carries its idempotency key
    signed = await browser.post(
        "/medecin/feuille", data={**fields, "cle": key[1], "action": "signer"}
    )
    assert signed.status_code == 303
    result = await browser.get(signed.headers["location"])
    assert result.status_code == 200
    assert "56,00" in result.text and "94,00" in result.text and "80,00" in result.text
    assert "la CNSS paie 56,00\u00a0MAD à l'assuré, virement le" in html.unescape(result.text)
    assert "ZOVIRAX" in result.text and "valable jusqu" in result.text
    number = signed.headers["location"].rsplit("/", 1)[1]
    home = await browser.get("/medecin")
    assert number in home.text and "1 feuille(s) aujourd'hui" in home.text
    audits = (await client.get("/fhir/AuditEvent", params={"_count": "50"})).json()["entry"]
    reads = [e["resource"]["entity"][0].get("description") for e in audits]
    assert f"feuille {number}" in reads  # reading a signed sheet is audited too
    assert reads.count("feuille de soins") == 1  # form, review, signature: one consultation
    copy = await browser.get(f"/medecin/feuille/{number}/copie")
    assert copy.status_code == 200 and "<svg" in copy.text and number in copy.text
    assert 'href="/static/fse/a5.css"' in copy.text and "BE123456" in copy.text  # A5 print
    assert "INPE 100000019" in copy.text and "Karim Benali" in copy.text
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=platform.app), base_url="http://t")
    async with other:
        name = f"dr.other.{uuid.uuid4().hex[:6]}"
        await create_user(
            platform.engine, name, PASSWORD, Role.PRESCRIBER, "Dr Autre", refs["0011"]
        )
        assert (await login(other, name)).status_code == 303
        assert (await other.get(f"/medecin/feuille/{number}")).status_code == 404


async def test_errors_are_shown_next_to_the_fields_with_the_input_kept(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    kinds = ("Encounter", "ChargeItem", "Claim", "Provenance", "MedicationRequest")

    async def counts() -> list[int]:
        return [
            (await client.get(f"/fhir/{k}", params={"_total": "accurate"})).json()["total"]
            for k in kinds
        ]

    before = await counts()
    page = await browser.post(
        "/medecin/feuille",
        data={
            "csrf": csrf,
            "patient": refs[FATIMA].split("/")[1],
            "action": "relire",
            "acte-1-code": "K",
            "acte-1-coef": "900",
            "acte-1-honoraires": "450",
        },
    )
    assert page.status_code == 422
    assert 'id="acte-1-coef-erreur"' in page.text and "Coefficient entre 1 et 400" in page.text
    assert 'value="900"' in page.text and 'value="450"' in page.text
    assert await counts() == before  # nothing of the sheet stored


async def test_a_form_without_the_session_token_is_refused(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, _ = await doctor(platform, client, browser)
    page = await browser.post(
        "/medecin/feuille",
        data={"csrf": "forged", "patient": refs[FATIMA].split("/")[1], "action": "signer"},
    )
    assert page.status_code == 403


async def test_signing_needs_a_professional_account_with_its_key(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    name = f"dr.nokey.{uuid.uuid4().hex[:6]}"
    await create_user(platform.engine, name, PASSWORD, Role.PRESCRIBER, "Dr Sans Fiche")
    assert (await login(browser, name)).status_code == 303
    page = await browser.get("/medecin/feuille", params={"patient": refs[FATIMA].split("/")[1]})
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    fields = {
        "csrf": csrf[1],
        "patient": refs[FATIMA].split("/")[1],
        "acte-1-code": "C",
        "acte-1-honoraires": "150",
        "action": "signer",
    }
    refused = await browser.post("/medecin/feuille", data=fields)
    assert refused.status_code == 409 and "reconnectez-vous" in refused.text
    assert 'value="150"' in refused.text  # the input is kept


async def sign_in_browser(browser: httpx.AsyncClient, fields: dict[str, str]) -> str:
    """Review then sign, as the doctor does; returns the sheet's number."""
    asked = await browser.post("/medecin/feuille", data={**fields, "action": "relire"})
    assert asked.status_code == 303, asked.text
    review = await browser.get(asked.headers["location"])
    key = re.search(r'name="cle" value="([^"]+)"', review.text)
    assert key
    signed = await browser.post(
        "/medecin/feuille", data={**fields, "cle": key[1], "action": "signer"}
    )
    assert signed.status_code == 303, signed.text
    return signed.headers["location"].rsplit("/", 1)[1]


async def text_of(browser: httpx.AsyncClient, url: str) -> str:
    """A page's text as the user reads it (entities such as &#39; decoded)."""
    page = await browser.get(url)
    assert page.status_code == 200, page.text
    return html.unescape(page.text)


def row_of(page: str, number: str) -> str:
    return page.split(f">{number}</a>")[1].split("</tr>")[0]


def consultation(csrf: str, patient: str, **more: str) -> dict[str, str]:
    return {
        "csrf": csrf,
        "patient": patient.split("/")[1],
        "acte-1-code": "C",
        "acte-1-honoraires": "150",
        **more,
    }


MAD = "\u00a0MAD"


async def test_a_cancelled_sheet_announces_no_payment_and_its_copy_says_so(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    medicine = {"med-1-produit": ZOVIRAX, "med-1-posologie": "1 cp", "med-1-duree": "5"}
    fields = consultation(csrf, refs[FATIMA], **medicine, **{"med-1-quantite": "1"})
    number = await sign_in_browser(browser, fields)
    page = await text_of(browser, f"/medecin/feuille/{number}")
    assert f"Feuille réglée : la CNSS paie 56,00{MAD} à l'assuré, virement le" in page
    copy = await text_of(browser, f"/medecin/feuille/{number}/copie")
    assert "code d'accès pharmacie" in copy and "ANNULÉE" not in copy
    cancelled = await browser.post(
        f"/medecin/feuille/{number}/annuler", data={"csrf": csrf, "confirmer": "oui"}
    )
    assert cancelled.status_code == 303
    page = await text_of(browser, f"/medecin/feuille/{number}")
    assert "ANNULÉE" in page and "Feuille annulée : rien n'est remboursé." in page
    assert "réglée" not in page and "virement" not in page and "viré" not in page
    assert "56,00" not in page  # no line still shows the refund
    copy = await text_of(browser, f"/medecin/feuille/{number}/copie")
    assert "ANNULÉE" in copy and "code d'accès" not in copy
    assert "56,00" not in copy and "virement" not in copy
    row = row_of(await text_of(browser, "/medecin"), number)
    assert "annulée" in row and "Fatima Alaoui" in row


async def test_my_sheets_name_the_patient_the_amount_and_the_true_status(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    paid = await sign_in_browser(browser, consultation(csrf, refs[FATIMA]))
    rejected = await sign_in_browser(browser, consultation(csrf, refs[TAZI]))
    home = await text_of(browser, "/medecin")
    assert "Fatima Alaoui" in row_of(home, paid) and f"56,00{MAD}" in row_of(home, paid)
    assert "signée et réglée" in row_of(home, paid)
    assert "Tazi" in row_of(home, rejected) and "rejetée (Droits fermés" in row_of(home, rejected)
    assert "signée" not in row_of(home, rejected)  # a rejected sheet is not "signée"
    page = await text_of(browser, f"/medecin/feuille/{rejected}")
    assert "Feuille rejetée (Droits fermés à la date des soins) : rien n'est remboursé" in page
    assert f"150,00{MAD} à la charge de l'assuré" in page
    batches = await payments(platform).run()
    assert len(batches) == 1
    lot = batches[0].batch_id
    assert f"payée (lot {lot}" in row_of(await text_of(browser, "/medecin"), paid)
    page = await text_of(browser, f"/medecin/feuille/{paid}")
    assert f"Feuille payée : 56,00{MAD} virés à l'assuré (lot {lot})" in page


async def test_a_beneficiary_copy_carries_the_main_insured_immatriculation(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    number = await sign_in_browser(browser, consultation(csrf, refs[AMINE]))
    copy = await text_of(browser, f"/medecin/feuille/{number}/copie")
    assert "Amine Alaoui" in copy and "CIN BE778899" in copy
    assert "Immatriculation 123456789 (assuré principal : Fatima Alaoui)" in copy
