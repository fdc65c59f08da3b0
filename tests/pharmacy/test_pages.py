"""The pharmacist's screens in the browser's terms (forms, redirects), without JavaScript."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import select, update

from fse.accounts import create_account
from fse.crypto.access_codes import access_code
from fse.crypto.provenance import verify
from fse.security.users import Role
from pharmacy.numbers import claim_number
from pharmacy.receipt import load_dispense
from pharmacy.tables import dispensations
from reimbursement.tables import settlements
from tests.conftest import Platform
from tests.fse.web.test_login import PASSWORD, login
from tests.pharmacy.helpers import CICLOVIRAL, fatima_sheet
from tests.prescriber.test_sheets import form, sign_as_benali, visit_of
from tests.reimbursement.demo import DR_BENALI, FATIMA, PHARMACIST, PHARMACIST_2, load_demo
from tests.reimbursement.test_review_and_payments import HERCEPTIN, ZOVIRAX, review

MAD = "\u00a0MAD"


@asynccontextmanager
async def signed_in(
    platform: Platform, practitioner: str | None, role: Role = Role.PHARMACIST
) -> AsyncIterator[httpx.AsyncClient]:
    name = f"u.{uuid.uuid4().hex[:8]}"
    await create_account(platform.app.state.fhir, name, PASSWORD, role, "Utilisateur", practitioner)
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await login(http, name)).status_code == 303
        yield http


def form_of(page: str, patient_heading: int = 0) -> dict[str, str]:
    """The hidden fields and the default inputs of the n-th insured's dispensing form."""
    form = page.split('<form method="post" action="/pharmacie/delivrer">')[patient_heading + 1]
    form = form.split("</form>")[0]
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))
    for name, chosen in re.findall(
        r'<select id="[^"]+" name="([^"]+)">\s*<option value="(\d+)"', form
    ):
        fields[name] = chosen
    return fields


def row_of(page: str, number: str) -> str:
    return page.split(f">{number}</a>")[1].split("</tr>")[0]


def request_id_of(fields: dict[str, str], ean_prefix: str, page: str) -> str:
    for name, value in fields.items():
        if name.startswith("produit-") and value.startswith(ean_prefix):
            return name.removeprefix("produit-")
    raise AssertionError(f"no line for {ean_prefix} in {page[:300]}")


async def nothing_was_stored(platform: Platform, before: dict[str, int]) -> None:
    """Nothing of a refused dispense is stored, not even a read AuditEvent: the lines shown
    again to the same pharmacist for the same search are the consultation already recorded
    (``audit_read_window_seconds``)."""
    after = await platform.row_counts()
    for table in ("dispensations", "prescription_balances", "settlements", "ledger_entries"):
        assert after[table] == before[table], table
    assert after["resources"] == before["resources"]


@asynccontextmanager
async def setting(platform: Platform, name: str, value: object) -> AsyncIterator[None]:
    settings = platform.app.state.settings
    kept = getattr(settings, name)
    setattr(settings, name, value)
    try:
        yield
    finally:
        setattr(settings, name, kept)


async def test_find_dispense_with_a_generic_see_amounts_print_and_reverse(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, _ = await fatima_sheet(platform, client)
    async with signed_in(platform, refs[PHARMACIST]) as http:
        home = await http.get("/pharmacie")
        assert home.status_code == 200 and "Pharmacie Al Amal" in home.text
        found = await http.get("/pharmacie/recherche", params={"q": "be 123456"})
        assert found.status_code == 200, found.text
        assert "Fatima Alaoui" in found.text and "non substituable" in found.text
        assert "E11" not in found.text and "Glycémie" not in found.text  # nothing clinical
        fields = form_of(found.text)
        zovirax = request_id_of(fields, "6118001141531", found.text)
        fields.update({f"qte-{zovirax}": "1", f"produit-{zovirax}": CICLOVIRAL})
        fields["tiers_payant"] = "on"
        done = await http.post("/pharmacie/delivrer", data=fields)
        assert done.status_code == 303, done.text
        number = done.headers["location"].rsplit("/", 1)[1]
        again = await http.post("/pharmacie/delivrer", data=fields)  # a double submit
        assert again.headers["location"] == done.headers["location"]
        result = await http.get(done.headers["location"])
        # The generic at PPV 209.00 = PBR: CNSS pays 146.30 to the pharmacy, the insured 62.70.
        shown = html.unescape(result.text)
        assert f"À payer au comptoir : 62,70{MAD}" in shown
        assert f"Délivrance réglée : la CNSS paie 146,30{MAD} à la pharmacie, virement le" in shown
        assert "générique substitué" in result.text
        receipt = await http.get(f"{done.headers['location']}/recu")
        assert receipt.status_code == 200 and "Reçu de délivrance" in receipt.text
        signature = re.search(r'<p class="signature">([^<]+)</p>', receipt.text)
        view = await load_dispense(platform.app.state.fhir, number)
        assert signature and view is not None
        jwk = platform.app.state.signing_key.jwk()
        # The printed signature is over the receipt as written: amounts and the payment.
        assert verify(jwk, signature[1], [view.receipt])
        assert view.receipt["rembourse_par_cnss"] == "146.30"
        assert view.receipt["paye_au_comptoir"] == "62.70"
        assert view.receipt["paiement"].startswith("lot de la coupure du ")
        assert view.receipt["lignes"][0]["generique_substitue"] is True
        tampered = {**view.receipt, "rembourse_par_cnss": "999.00"}
        assert not verify(jwk, signature[1], [tampered])
        csrf = fields["csrf"]
        # The first press only asks, saying what will happen; nothing is reversed yet.
        asked = await http.post(f"/pharmacie/delivrance/{number}/annuler", data={"csrf": csrf})
        assert asked.status_code == 200 and "Confirmer l'annulation ?" in asked.text
        assert "1 × CICLOVIRAL" in asked.text and 'name="confirmer" value="oui"' in asked.text
        assert "ANNULÉE" not in (await http.get(done.headers["location"])).text
        reversed_ = await http.post(
            f"/pharmacie/delivrance/{number}/annuler", data={"csrf": csrf, "confirmer": "oui"}
        )
        assert reversed_.status_code == 303
        again = await http.post(
            f"/pharmacie/delivrance/{number}/annuler", data={"csrf": csrf, "confirmer": "oui"}
        )
        assert again.status_code == 409 and "déjà annulée" in again.text
        page = html.unescape((await http.get(done.headers["location"])).text)
        assert "ANNULÉE" in page and "Délivrance annulée : rien n'est remboursé." in page
        assert "réglée" not in page and "146,30" not in page and "la CNSS paie" not in page
        assert "annulée" in row_of(html.unescape((await http.get("/pharmacie")).text), number)


async def test_two_pharmacies_on_one_line_the_second_gets_a_conflict(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    async with (
        signed_in(platform, refs[PHARMACIST]) as first,
        signed_in(platform, refs[PHARMACIST_2]) as second,
    ):
        pages = [
            await p.get("/pharmacie/recherche", params={"q": sheet.number}) for p in (first, second)
        ]
        forms = [form_of(page.text) for page in pages]
        ciclo = request_id_of(forms[0], CICLOVIRAL, pages[0].text)
        for fields in forms:
            fields[f"qte-{ciclo}"] = "2"
        assert (await first.post("/pharmacie/delivrer", data=forms[0])).status_code == 303
        before = await platform.row_counts()
        lost = await second.post("/pharmacie/delivrer", data=forms[1])
        assert lost.status_code == 409
        assert "délivrée entre-temps ailleurs" in lost.text or "entièrement délivrée" in lost.text
        await nothing_was_stored(platform, before)
        # Another pharmacy's dispense cannot be seen, printed or reversed from here.
        number = (await first.get("/pharmacie")).text.split("/pharmacie/delivrance/")[1][:23]
        assert (await second.get(f"/pharmacie/delivrance/{number}")).status_code == 404
        csrf = forms[1]["csrf"]
        refused = await second.post(f"/pharmacie/delivrance/{number}/annuler", data={"csrf": csrf})
        assert refused.status_code == 404
        await nothing_was_stored(platform, before)


async def test_form_errors_stay_beside_their_line_and_store_nothing(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    async with signed_in(platform, refs[PHARMACIST]) as http:
        page = await http.get("/pharmacie/recherche", params={"q": sheet.number})
        fields = form_of(page.text)
        ciclo = request_id_of(fields, CICLOVIRAL, page.text)
        before = await platform.row_counts()
        for change, status, message in (
            ({f"qte-{ciclo}": "3"}, 422, "supérieure au reste à délivrer (2)"),
            ({f"qte-{ciclo}": "1", f"prix-{ciclo}": "douze"}, 422, "Prix invalide"),
            ({f"qte-{ciclo}": "1", f"produit-{ciclo}": "6118001141531"}, 422, "non substituable"),
            ({}, 422, "Indiquez au moins une quantité"),
            ({f"qte-{ciclo}": "1", "csrf": "forged"}, 403, "Requête refusée"),
        ):
            answer = await http.post("/pharmacie/delivrer", data={**fields, **change})
            assert answer.status_code == status and message in answer.text, change
        await nothing_was_stored(platform, before)


async def test_lookups_need_the_access_code_when_required_and_are_rate_limited(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    code = access_code(platform.app.state.signing_key, sheet.number)
    async with (
        signed_in(platform, refs[PHARMACIST]) as http,
        setting(platform, "pharmacy_access_code", True),
    ):
        assert "Code d'accès" in (await http.get("/pharmacie")).text
        missing = await http.get("/pharmacie/recherche", params={"q": "BE123456"})
        assert missing.status_code == 404 and "CICLOVIRAL" not in missing.text
        wrong = "000000" if code != "000000" else "111111"
        bad = await http.get("/pharmacie/recherche", params={"q": "BE123456", "code": wrong})
        assert bad.status_code == 404
        good = await http.get("/pharmacie/recherche", params={"q": "BE123456", "code": code})
        assert good.status_code == 200 and "CICLOVIRAL" in good.text
        assert "RX-2026-000001" not in good.text  # only the sheet whose code was typed
    async with (
        signed_in(platform, refs[PHARMACIST]) as http,  # a new pharmacist: a new count
        setting(platform, "pharmacy_lookups_per_hour", 2),
    ):
        for _ in range(2):
            assert (
                await http.get("/pharmacie/recherche", params={"q": "BE123456"})
            ).status_code == 200
        limited = await http.get("/pharmacie/recherche", params={"q": "BE123456"})
        assert limited.status_code == 429 and "Trop de recherches" in limited.text


@pytest.mark.parametrize("role", [Role.PRESCRIBER, Role.CNSS_AGENT])
async def test_other_roles_cannot_open_the_pharmacy(
    platform: Platform, client: httpx.AsyncClient, role: Role
) -> None:
    refs, _ = await fatima_sheet(platform, client)
    async with signed_in(platform, refs[DR_BENALI], role) as http:
        assert (await http.get("/pharmacie")).status_code == 403
        assert (await http.get("/pharmacie/recherche", params={"q": "BE123456"})).status_code == 403


async def test_a_pharmacist_without_a_pharmacy_is_told_so(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, _ = await fatima_sheet(platform, client)
    async with signed_in(platform, refs[DR_BENALI], Role.PHARMACIST) as http:  # no pharmacy role
        page = await http.get("/pharmacie")
        assert page.status_code == 403 and "aucune pharmacie" in page.text


async def test_the_idempotency_key_header_takes_precedence_over_the_form(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """Pharmacy software retrying a request sends the same Idempotency-Key header: the first
    dispense answers, whatever hidden key the page carried."""
    refs, sheet = await fatima_sheet(platform, client)
    async with signed_in(platform, refs[PHARMACIST]) as http:
        page = await http.get("/pharmacie/recherche", params={"q": sheet.number})
        fields = form_of(page.text)
        ciclo = request_id_of(fields, CICLOVIRAL, page.text)
        fields[f"qte-{ciclo}"] = "1"
        retry = {"Idempotency-Key": "retry-0001-of-a-dispense"}
        first = await http.post("/pharmacie/delivrer", data=fields, headers=retry)
        counts = await platform.row_counts()
        again = await http.post(
            "/pharmacie/delivrer", data={**fields, "cle": "another-page-key"}, headers=retry
        )
        assert first.status_code == again.status_code == 303
        assert again.headers["location"] == first.headers["location"]
        assert await platform.row_counts() == counts


async def shown(http: httpx.AsyncClient, url: str, **params: str) -> str:
    """A page's text as the user reads it (entities such as &#39; decoded)."""
    page = await http.get(url, params=params)
    assert page.status_code == 200, page.text
    return html.unescape(page.text)


async def response_id(platform: Platform, number: str) -> str:
    key = f"https://fse.cnss.ma/fhir/sid/fse|{claim_number(number)}"
    async with platform.engine.connect() as conn:
        found = await conn.scalar(
            select(settlements.c.response_id).where(settlements.c.claim_key == key)
        )
    assert found is not None
    return str(found)


async def test_a_held_dispense_promises_nothing_then_says_the_decision(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    visit = form(
        med_1_produit=HERCEPTIN,
        med_1_posologie="1 flacon par cure",
        med_1_duree="21",
        med_1_quantite="2",
    )
    sheet = await sign_as_benali(platform, refs, FATIMA, visit_of(visit))
    async with signed_in(platform, refs[PHARMACIST]) as http:
        numbers = []
        for _ in range(2):  # one box now, one box later: two dispenses, two decisions
            found = await http.get("/pharmacie/recherche", params={"q": sheet.number})
            fields = form_of(found.text)
            fields[f"qte-{request_id_of(fields, HERCEPTIN, found.text)}"] = "1"
            fields["tiers_payant"] = "on"
            before = await platform.row_counts()
            warned = await http.post("/pharmacie/delivrer", data=fields)
            assert warned.status_code == 409  # announced as held first: nothing dispensed
            await nothing_was_stored(platform, before)  # settled under its locks, rolled back
            seen = {**form_of(warned.text), **{k: v for k, v in fields.items() if k != "cle"}}
            done = await http.post("/pharmacie/delivrer", data=seen)
            assert done.status_code == 303, done.text
            numbers.append(done.headers["location"].rsplit("/", 1)[1])
        rejected, released = numbers
        page = await shown(http, f"/pharmacie/delivrance/{rejected}")
        assert "Délivrance retenue pour contrôle CNSS" in page
        assert "rien n'est payé avant la décision de la CNSS" in page
        assert "la CNSS paie" not in page and "4\u202f823,00" not in page  # no payment promised
        assert "en attente de contrôle" in page
        assert "retenue pour contrôle" in row_of(await shown(http, "/pharmacie"), rejected)
        for number, decision in ((rejected, "reject"), (released, "release")):
            url = f"/fhir/ClaimResponse/{await response_id(platform, number)}/$review"
            answer = await client.post(url, json=review(decision, "indication vérifiée"))
            assert answer.status_code == 200, answer.text
        page = await shown(http, f"/pharmacie/delivrance/{rejected}")
        assert "Délivrance refusée après contrôle CNSS : indication vérifiée." in page
        assert "Mise en attente pour contrôle" not in page and "la CNSS paie" not in page
        assert "Refusée après contrôle CNSS" in page  # the line says so too
        assert f"À la charge de l'assuré : 6\u202f890,00{MAD}" in page
        assert f"la part que la CNSS ne paie pas, 4\u202f823,00{MAD}" in page
        receipt = await shown(http, f"/pharmacie/delivrance/{rejected}/recu")
        assert "Délivrance refusée après contrôle CNSS" in receipt and "la CNSS paie" not in receipt
        page = await shown(http, f"/pharmacie/delivrance/{released}")
        assert "Délivrance libérée après contrôle CNSS : la CNSS paie 4\u202f823,00" in page
        assert f"À payer au comptoir : 2\u202f067,00{MAD}" in page
        day = await shown(http, "/pharmacie")
        assert "refusée après contrôle" in row_of(day, rejected)
        assert "libérée après contrôle" in row_of(day, released)


async def test_the_lookup_shows_earlier_dispenses_and_the_receipt_names_sheet_rest_pharmacy(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    async with (
        signed_in(platform, refs[PHARMACIST]) as first,
        signed_in(platform, refs[PHARMACIST_2]) as second,
    ):
        page = await first.get("/pharmacie/recherche", params={"q": sheet.number})
        fields = form_of(page.text)
        zovirax = request_id_of(fields, ZOVIRAX, page.text)
        ciclo = request_id_of(fields, CICLOVIRAL, page.text)
        fields.update({f"qte-{zovirax}": "1", f"produit-{zovirax}": CICLOVIRAL})
        fields[f"qte-{ciclo}"] = "1"
        done = await first.post("/pharmacie/delivrer", data=fields)
        number = done.headers["location"].rsplit("/", 1)[1]
        assert re.fullmatch(r"DEL-\d{4}-\d{9}-\d{2}", number)  # not a care-sheet number
        receipt = await shown(first, f"/pharmacie/delivrance/{number}/recu")
        assert f"Feuille de soins : <strong>{sheet.number}</strong>" in receipt
        assert "Pharmacie Al Amal</strong> · INPE 300000017 · Kénitra" in receipt
        assert "Reste à délivrer" in receipt
        rests = re.findall(r"<td>(\d+) boîte\(s\)</td>", receipt)
        assert sorted(rests) == ["0", "1"]  # ZOVIRAX done, CICLOVIRAL 1 of 2 left
        later = await shown(second, "/pharmacie/recherche", q=sheet.number)
        earlier = later.split(f"Délivrances antérieures de la feuille {sheet.number}")[1]
        earlier = earlier.split("</table>")[0]
        assert earlier.count("Pharmacie Al Amal") == 2
        assert "générique substitué" in earlier and "produit prescrit" in earlier
        # A dispense written before DEL- numbers carries its claim's FSE- number: still opens.
        async with platform.engine.begin() as conn:
            await conn.execute(
                update(dispensations)
                .where(dispensations.c.number == number)
                .values(number=claim_number(number))
            )
        old = await shown(first, f"/pharmacie/delivrance/{claim_number(number)}")
        assert "Délivrance réglée : la CNSS paie" in old


async def test_the_substitution_list_labels_princeps_and_generics_as_the_list_does(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """Generics prescribed: the princeps offered in their place (DOLIPRANE, AMLOR) are
    labelled princeps, never "(générique)"."""
    refs = await load_demo(client)
    generics = form(
        med_1_produit="CETAMYL 500 MG, 1 BOITE 20 COMPRIME",
        med_1_posologie="1 comprimé 3 fois par jour",
        med_1_duree="5",
        med_1_quantite="1",
        med_2_produit="AMCARD 5 MG, 1 BOITE 28 COMPRIME",
        med_2_posologie="1 comprimé le matin",
        med_2_duree="30",
        med_2_quantite="1",
    )
    await sign_as_benali(platform, refs, FATIMA, visit_of(generics))
    async with signed_in(platform, refs[PHARMACIST]) as http:
        page = await http.get("/pharmacie/recherche", params={"q": "BE123456"})
        assert page.status_code == 200, page.text
        options = dict(re.findall(r'<option value="(\d+)"[^>]*>([^<]+)</option>', page.text))
        doliprane, amlor = options["6118000040347"], options["6118000250531"]
        assert doliprane.startswith(
            "DOLIPRANE 500 MG COMPRIME SECABLE, 1 BOITE 20 COMPRIME (princeps)"
        )
        assert amlor.startswith("AMLOR 5 MG, 1 BOITE 28 COMPRIME (princeps) —")
        keni, atlas = options["6118000190219"], options["6118000130413"]
        assert keni.startswith("CETAMYL 500 MG, 1 BOITE 20 COMPRIME (générique), prescrit")
        assert atlas.startswith("AMCARD 5 MG, 1 BOITE 28 COMPRIME (générique), prescrit")
        # its public price and reimbursement base, short enough to read in the list
        assert options["6118000040347"].endswith("— 10,30 / 10,20\u00a0MAD")
        assert all("(générique)" not in options[p] for p in ("6118000040347", "6118000250531"))
