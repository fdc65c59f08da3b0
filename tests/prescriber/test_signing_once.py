"""Exactly once from the doctor's browser: a reviewed form signs one sheet (Back + "Signer", a
double click, a retried or concurrent POST show the first one), written and settled in one
transaction (a settlement failure stores nothing and says so in French), and a second sheet with
the same lines the same day needs the doctor's confirmation."""

from __future__ import annotations

import asyncio
import html
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from fhir_profiles.identifiers import care_sheet_number
from fse.errors import Unprocessable
from fse.security.users import Role
from fse.store.tables import resources
from prescriber.cancel import cancel_sheet
from prescriber.duplicates import DuplicateSheet
from prescriber.history import load_sheet
from prescriber.idempotency import PRUNING, REVIEW_LIFETIME
from prescriber.sheets import SettlementFailed, SignedSheet, sign_sheet
from prescriber.tables import sheet_reviews
from reimbursement.reference_data import default_books
from tests.conftest import Platform
from tests.pharmacy.test_pages import signed_in
from tests.prescriber.test_pages import ZOVIRAX, doctor
from tests.prescriber.test_sheets import FULL_VISIT, NOW, doctor_key, sign_as_benali, visit_of
from tests.reimbursement.demo import (
    DR_BENALI,
    DR_ELIDRISSI,
    FATIMA,
    FSE,
    PHARMACIST,
    act,
    claim,
    load_demo,
)
from tests.statements import statements

VISIT = {
    "acte-1-code": "C",
    "acte-1-honoraires": "150",
    "med-1-produit": ZOVIRAX,
    "med-1-posologie": "1 comprimé 5 fois par jour",
    "med-1-duree": "5",
    "med-1-quantite": "1",
}
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
KINDS = ("Encounter", "ChargeItem", "MedicationRequest", "Claim", "ClaimResponse", "Provenance")
MONEY = ("settlements", "settlement_lines", "ledger_entries", "signed_sheets")


def review_form(page: str) -> dict[str, str]:
    """The review page's form as the browser posts it: every hidden field, the key included."""
    return {html.unescape(name): html.unescape(value) for name, value in HIDDEN.findall(page)}


async def reviewed(
    browser: httpx.AsyncClient, csrf: str, patient: str, **changes: str
) -> tuple[dict[str, str], str]:
    """Review the visit (with ``changes``): the form to sign, and the review page."""
    asked = await browser.post(
        "/medecin/feuille",
        data={"csrf": csrf, "patient": patient, **VISIT, **changes, "action": "relire"},
    )
    assert asked.status_code == 303, asked.text
    page = await browser.get(asked.headers["location"])
    assert page.status_code == 200, page.text
    return review_form(page.text), page.text


async def sign(browser: httpx.AsyncClient, form: dict[str, str], **extra: str) -> httpx.Response:
    return await browser.post("/medecin/feuille", data={**form, **extra, "action": "signer"})


async def stored(platform: Platform) -> Counter[str]:
    """What signing writes: the sheet's resources by type and the money rows."""
    async with platform.engine.connect() as conn:
        rows = await conn.execute(
            select(resources.c.type, func.count())
            .where(resources.c.type.in_(KINDS))
            .group_by(resources.c.type)
        )
        counts = Counter({kind: count for kind, count in rows})
    all_rows = await platform.row_counts()
    counts.update({table: all_rows[table] for table in MONEY})
    return counts


def one_sheet() -> Counter[str]:
    kinds = (*KINDS, *MONEY)
    return Counter({kind: 1 for kind in kinds} | {"settlement_lines": 1, "ledger_entries": 2})


def growth(after: Counter[str], before: Counter[str]) -> Counter[str]:
    return Counter(
        {k: after[k] - before[k] for k in set(after) | set(before) if after[k] - before[k]}
    )


async def test_back_then_sign_again_shows_the_first_sheet_and_stores_nothing_more(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    """The reproduction: sign, press Back, press "Signer" again (the same review form)."""
    refs, csrf = await doctor(platform, client, browser)
    form, _ = await reviewed(browser, csrf, refs[FATIMA].split("/")[1])
    before = await stored(platform)
    first = await sign(browser, form)
    assert first.status_code == 303, first.text
    once = await stored(platform)
    again = await sign(browser, form)  # Back + "Signer", or a double click
    assert again.status_code == 303 and again.headers["location"] == first.headers["location"]
    assert await stored(platform) == once  # nothing more: no sheet, claim, line or payment
    assert growth(once, before) == one_sheet()
    page = await browser.get(again.headers["location"])
    assert page.status_code == 200 and "ZOVIRAX" in page.text
    assert len(form["cle"]) >= 16  # the reviewed form carries an idempotency key...
    fresh, _ = await reviewed(browser, csrf, refs[FATIMA].split("/")[1])
    assert fresh["cle"] != form["cle"]  # ...drawn anew at each review render


async def test_ten_concurrent_posts_of_one_form_sign_one_sheet(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    form, _ = await reviewed(browser, csrf, refs[FATIMA].split("/")[1])
    before = await stored(platform)
    answers = await asyncio.gather(*(sign(browser, form) for _ in range(10)))
    assert [a.status_code for a in answers] == [303] * 10, [a.text for a in answers]
    assert len({a.headers["location"] for a in answers}) == 1
    assert growth(await stored(platform), before) == one_sheet()


async def test_the_same_key_with_other_content_is_refused_and_stores_nothing(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    form, _ = await reviewed(browser, csrf, refs[FATIMA].split("/")[1])
    first = await sign(browser, form)
    assert first.status_code == 303
    number = first.headers["location"].rsplit("/", 1)[1]
    before = await stored(platform)
    for changed in ({"med-1-quantite": "2"}, {"patient": refs["0103"].split("/")[1]}):
        refused = await sign(browser, {**form, **changed})
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"].startswith("text/html")
        assert "a déjà servi" in refused.text and number in refused.text
        assert await stored(platform) == before


async def test_a_post_without_the_review_key_signs_nothing(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    form, _ = await reviewed(browser, csrf, refs[FATIMA].split("/")[1])
    before = await stored(platform)
    page = await sign(browser, {k: v for k, v in form.items() if k != "cle"})
    assert page.status_code == 422 and "Relecture avant signature" in page.text
    assert "signez à nouveau" in html.unescape(page.text) and review_form(page.text)["cle"]
    assert await stored(platform) == before


def boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("adjudication engine down")


def refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise Unprocessable("the engine refuses this claim")


@pytest.mark.parametrize("failure", [boom, refuse], ids=["error", "refusal"])
async def test_a_settlement_failure_stores_nothing_and_says_what_to_do_in_french(
    platform: Platform,
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    failure: Any,
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    patient = refs[FATIMA].split("/")[1]
    counts = [await platform.row_counts()]
    form, _ = await reviewed(browser, csrf, patient)
    counts.append(await platform.row_counts())
    await browser.get(f"/medecin/relecture/{form['cle']}")  # one audited read of the insured
    counts[0], counts[1] = counts[1], await platform.row_counts()
    monkeypatch.setattr("reimbursement.settle.adjudicate", failure)
    page = await sign(browser, form)
    counts.append(await platform.row_counts())
    assert page.status_code == 503, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "resourceType" not in page.text and "OperationOutcome" not in page.text
    assert "Rien n'a été enregistré" in html.unescape(page.text)
    assert "Signer la feuille" in page.text and "réessayez" in html.unescape(page.text).lower()
    # Showing the review reads the insured (an audited read); signing stored nothing more.
    assert growth(Counter(counts[2]), Counter(counts[1])) == growth(
        Counter(counts[1]), Counter(counts[0])
    )
    monkeypatch.undo()
    retried = await sign(browser, review_form(page.text))  # the page's "Signer" works now
    assert retried.status_code == 303, retried.text


@pytest.mark.parametrize("failure", [boom, refuse], ids=["error", "refusal"])
async def test_signing_and_settling_are_one_transaction(
    platform: Platform,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    failure: Any,
) -> None:
    """Row counts of every table: the Encounter, acts, prescriptions, lab order, Claim,
    Provenance, AuditEvent, key row and settlement go together or not at all."""
    refs = await load_demo(client)
    key, _ = await doctor_key(platform, refs)
    app = platform.app.state
    monkeypatch.setattr("reimbursement.settle.adjudicate", failure)
    before = await platform.row_counts()
    with pytest.raises(SettlementFailed):
        await sign_sheet(
            app.fhir,
            app.settlement,
            default_books(),
            refs[DR_BENALI],
            key,
            refs[FATIMA].split("/")[1],
            visit_of(FULL_VISIT),
            NOW,
        )
    assert await platform.row_counts() == before


async def test_a_same_day_duplicate_is_flagged_and_needs_a_confirmation(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    patient = refs[FATIMA].split("/")[1]
    form, page = await reviewed(browser, csrf, patient)
    assert "doublon" not in page
    first = (await sign(browser, form)).headers["location"].rsplit("/", 1)[1]
    # Same lines (the fee and dosage do not count), typed again: the review names the first.
    second, page = await reviewed(
        browser, csrf, patient, **{"acte-1-honoraires": "200", "med-1-posologie": "2 par jour"}
    )
    assert second["cle"] != form["cle"]
    assert first in page and 'name="doublon"' in page
    before = await stored(platform)
    refused = await sign(browser, second)
    assert refused.status_code == 409, refused.text
    assert "Relecture avant signature" in refused.text and first in refused.text
    assert "Cochez" in refused.text
    assert await stored(platform) == before  # the server enforces it: nothing stored
    confirmed = await sign(browser, review_form(refused.text), doublon="on")
    assert confirmed.status_code == 303, confirmed.text
    assert confirmed.headers["location"].rsplit("/", 1)[1] != first
    # A whole second sheet, whose consultation the engine rejects as a duplicate (R06): it
    # books no benefit, so no ledger entries.
    assert growth(await stored(platform), before) == one_sheet() - Counter(ledger_entries=2)
    shown = await browser.get(confirmed.headers["location"])
    assert "Doublon de feuille de soins" in shown.text
    # Other lines (two boxes) are no duplicate.
    _, other = await reviewed(browser, csrf, patient, **{"med-1-quantite": "2"})
    assert 'name="doublon"' not in other


async def test_a_cancelled_sheet_is_no_duplicate(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs, csrf = await doctor(platform, client, browser)
    patient = refs[FATIMA].split("/")[1]
    form, _ = await reviewed(browser, csrf, patient)
    number = (await sign(browser, form)).headers["location"].rsplit("/", 1)[1]
    fhir = platform.app.state.fhir
    view = await load_sheet(fhir, number)
    assert view is not None
    await cancel_sheet(fhir, view, refs[DR_BENALI], datetime.now(UTC))
    again, page = await reviewed(browser, csrf, patient)
    assert 'name="doublon"' not in page
    assert (await sign(browser, again)).status_code == 303


async def test_two_reviews_of_the_same_lines_signed_at_once_make_one_sheet(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """Two review forms (two keys), same lines, signed concurrently: the duplicate check runs
    under a per doctor and insured lock in the signing transaction, so one is refused."""
    refs = await load_demo(client)
    key, _ = await doctor_key(platform, refs)
    app = platform.app.state
    before = await stored(platform)

    async def attempt() -> SignedSheet | DuplicateSheet:
        visit = visit_of(FULL_VISIT)
        patient = refs[FATIMA].split("/")[1]
        try:
            return await sign_sheet(
                app.fhir, app.settlement, default_books(), refs[DR_BENALI], key, patient, visit, NOW
            )
        except DuplicateSheet as duplicate:
            return duplicate

    results = await asyncio.gather(attempt(), attempt())
    signed = [r for r in results if isinstance(r, SignedSheet)]
    refused = [r for r in results if isinstance(r, DuplicateSheet)]
    assert len(signed) == 1 and len(refused) == 1, results
    assert refused[0].numbers == [signed[0].number]
    assert growth(await stored(platform), before)["Encounter"] == 1


async def test_a_review_page_opens_to_its_doctor_only_and_odd_keys_are_404(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    """``GET /medecin/relecture/{key}``: another doctor, a pharmacist, someone not signed in, an
    unknown or malformed key: never the review, never a 500, nothing stored."""
    refs, csrf = await doctor(platform, client, browser)
    form, _ = await reviewed(browser, csrf, refs[FATIMA].split("/")[1])
    url = f"/medecin/relecture/{form['cle']}"
    transport = httpx.ASGITransport(app=platform.app)
    async with (
        signed_in(platform, refs[DR_ELIDRISSI], Role.PRESCRIBER) as other_doctor,
        signed_in(platform, refs[PHARMACIST], Role.PHARMACIST) as pharmacist,
        httpx.AsyncClient(transport=transport, base_url="http://test") as anonymous,
    ):
        before = await platform.row_counts()
        answer = await other_doctor.get(url)
        assert answer.status_code == 404 and "Relecture introuvable" in answer.text
        assert "ZOVIRAX" not in answer.text
        for key in ("inconnue", "x" * 500, "..%2F..%2Fetc", "é" * 30, form["cle"] + "x"):
            odd = await other_doctor.get(f"/medecin/relecture/{key}")
            assert odd.status_code == 404, (key, odd.status_code)
        refused = await pharmacist.get(url)
        assert refused.status_code == 403 and "Accès refusé" in refused.text
        answer = await anonymous.get(url)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/connexion")
        assert await platform.row_counts() == before
    assert (await browser.get(url)).status_code == 200  # its doctor still reviews it


async def test_a_review_older_than_a_day_is_forgotten_and_pruned_as_others_are_saved(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    """A review not signed within a day opens no more (the doctor reviews again), whenever its
    row is deleted; a later review deletes it, at most once a minute per process."""
    refs, csrf = await doctor(platform, client, browser)
    form, _ = await reviewed(browser, csrf, refs[FATIMA].split("/")[1])
    url = f"/medecin/relecture/{form['cle']}"
    aged = datetime.now(UTC) - REVIEW_LIFETIME - timedelta(minutes=1)
    async with platform.engine.begin() as conn:
        await conn.execute(
            update(sheet_reviews)
            .where(sheet_reviews.c.idempotency_key == form["cle"])
            .values(created_at=aged)
        )
    answer = await browser.get(url)
    assert answer.status_code == 404 and "Relecture introuvable" in answer.text

    async def kept() -> list[str]:
        async with platform.engine.connect() as conn:
            return list((await conn.execute(select(sheet_reviews.c.idempotency_key))).scalars())

    PRUNING.last = datetime.now(UTC)  # pruned a moment ago: this save does not look
    await reviewed(browser, csrf, refs[FATIMA].split("/")[1])
    assert form["cle"] in await kept()
    PRUNING.last = None
    newest, _ = await reviewed(browser, csrf, refs[FATIMA].split("/")[1])
    assert form["cle"] not in await kept() and newest["cle"] in await kept()


async def test_the_review_page_reads_the_insured_once(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    """The page's own read of the insured, with the doctor and their roles in the same
    statement, feeds its pre-settlement (six statements on PostgreSQL with the session's; nine,
    then seven before)."""
    refs, csrf = await doctor(platform, client, browser)
    asked = await browser.post(
        "/medecin/feuille",
        data={"csrf": csrf, "patient": refs[FATIMA].split("/")[1], **VISIT, "action": "relire"},
    )
    with statements(platform.engine) as sent:
        page = await browser.get(asked.headers["location"])
    assert page.status_code == 200 and "Relecture avant signature" in page.text
    assert "La CNSS rembourse 56,00\u00a0MAD" in html.unescape(page.text)  # pre-settled
    kinds = ("Patient", "Coverage", "Condition", "Practitioner", "PractitionerRole")
    reads = {t: sum(s.reads(t) for s in sent) for t in kinds}
    assert reads == dict.fromkeys(kinds, 1)
    if platform.backend == "postgresql":
        assert len(sent) <= 6, "\n".join(s.sql[:120] for s in sent)


async def test_a_number_already_settled_elsewhere_is_drawn_again_and_nothing_of_it_is_kept(
    platform: Platform, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sheet's number is drawn at random; one a CNSS system already settled through
    $submit is refused by the store (the care sheet's unique keys), the signing rolls back and
    draws another: the sheet signs once under the new number, the first claim is untouched."""
    refs = await load_demo(client)
    taken = care_sheet_number(NOW.year, 123456789)
    submitted = await client.post(
        "/fhir/Claim/$submit", json=claim(refs, FATIMA, [act("C", "150.00")], number=taken)
    )
    assert submitted.status_code == 200, submitted.text
    drawn = iter([taken])
    monkeypatch.setattr(
        "prescriber.sheets.care_sheet_number",
        lambda year, n: next(drawn, None) or care_sheet_number(year, n),
    )
    before = await platform.row_counts()
    sheet = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT))
    assert sheet.number != taken and not sheet.replayed
    assert sheet.response is not None and sheet.response["outcome"] == "complete"
    after = await platform.row_counts()
    assert after["settlements"] == before["settlements"] + 1
    assert after["signed_sheets"] == before["signed_sheets"] + 1
    found = await client.get("/fhir/Claim", params={"identifier": f"{FSE}|{taken}"})
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [
        submitted.json()["request"]["reference"].split("/")[1]
    ]
