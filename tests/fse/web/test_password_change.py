"""'Changer mon mot de passe': the hash and the sealed signing key change together, what was
signed before still verifies, a wrong current password changes nothing and counts as a failed
login, other sessions end."""

from __future__ import annotations

import html
import uuid

import httpx
from sqlalchemy import select

from fse.accounts import create_account
from fse.security.tables import users
from fse.security.users import Role, create_user, unlock_signing_key
from prescriber.verify import verify_sheet
from tests.conftest import Platform
from tests.fse.web.test_login import PASSWORD, csrf_of, login, sessions_of
from tests.prescriber.test_pages import consultation, sign_in_browser
from tests.reimbursement.demo import DR_BENALI, FATIMA, load_demo

PAGE = "/espace/mot-de-passe"
NEW_PASSWORD = "another-long-passphrase"


def browser_of(platform: Platform) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=platform.app)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def change(
    browser: httpx.AsyncClient,
    current: str = PASSWORD,
    new: str = NEW_PASSWORD,
    confirmation: str | None = None,
    csrf: str | None = None,
) -> httpx.Response:
    form = await browser.get(PAGE)
    assert form.status_code == 200, form.text
    fields = {
        "csrf": csrf_of(form) if csrf is None else csrf,
        "actuel": current,
        "nouveau": new,
        "confirmation": new if confirmation is None else confirmation,
    }
    return await browser.post(PAGE, data=fields)


async def stored(platform: Platform, name: str) -> tuple[str, str | None]:
    async with platform.engine.connect() as conn:
        row = (
            await conn.execute(
                select(users.c.password_hash, users.c.signing_key).where(users.c.username == name)
            )
        ).one()
    return row.password_hash, row.signing_key


async def test_a_doctor_changes_password_then_signs_with_the_new_one(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    name = f"dr.{uuid.uuid4().hex[:8]}"
    user = await create_account(
        platform.app.state.fhir, name, PASSWORD, Role.PRESCRIBER, "Dr Benali", refs[DR_BENALI]
    )
    assert (await login(browser, name)).status_code == 303
    page = await browser.get("/medecin/feuille", params={"patient": refs[FATIMA].split("/")[1]})
    before = await sign_in_browser(browser, consultation(csrf_of(page), refs[FATIMA]))
    _hash, sealed_before = await stored(platform, name)

    changed = await change(browser)
    assert changed.status_code == 303 and changed.headers["location"] == f"{PAGE}?modifie=1"
    done = await browser.get(changed.headers["location"])
    assert "Votre mot de passe a été changé." in html.unescape(done.text)
    _hash, sealed_after = await stored(platform, name)
    assert sealed_after != sealed_before  # re-sealed under the new password
    # The same private key: what was signed before still verifies with the published key.
    assert (await verify_sheet(platform.app.state.fhir, before)).valid
    assert await unlock_signing_key(platform.engine, name, PASSWORD) is None
    key = await unlock_signing_key(platform.engine, name, NEW_PASSWORD)
    assert key is not None and key.jwk() == user.signing_jwk

    async with browser_of(platform) as again:
        assert (await login(again, name, PASSWORD)).status_code == 401
        assert (await login(again, name, NEW_PASSWORD)).status_code == 303
        page = await again.get("/medecin/feuille", params={"patient": refs[FATIMA].split("/")[1]})
        second = consultation(csrf_of(page), refs[FATIMA], doublon="on")  # same lines, same day
        after = await sign_in_browser(again, second)
    assert (await verify_sheet(platform.app.state.fhir, after)).valid


async def test_other_sessions_end_and_this_one_stays(
    platform: Platform, browser: httpx.AsyncClient
) -> None:
    name = f"agent.{uuid.uuid4().hex[:8]}"  # no signing key: any person with a password
    await create_user(platform.engine, name, PASSWORD, Role.CNSS_AGENT, "Agent")
    assert (await login(browser, name)).status_code == 303
    workspace = await browser.get("/espace")
    assert f'href="{PAGE}">Changer mon mot de passe</a>' in workspace.text  # in the header
    async with browser_of(platform) as elsewhere:
        assert (await login(elsewhere, name)).status_code == 303
        assert await sessions_of(platform, name) == 2
        assert (await change(browser)).status_code == 303
        assert (await elsewhere.get("/espace")).status_code == 303  # back to the login page
    assert (await browser.get("/espace")).status_code == 200
    assert await sessions_of(platform, name) == 1
    assert (await stored(platform, name))[1] is None


async def test_a_wrong_current_password_changes_nothing_and_counts_as_a_failed_login(
    platform: Platform, browser: httpx.AsyncClient
) -> None:
    name = f"ph.{uuid.uuid4().hex[:8]}"
    await create_user(platform.engine, name, PASSWORD, Role.PHARMACIST, "Pharmacien")
    assert (await login(browser, name)).status_code == 303
    before = await stored(platform, name)
    async with browser_of(platform) as elsewhere:
        assert (await login(elsewhere, name)).status_code == 303
        for _ in range(platform.settings.login_failures_per_account):
            refused = await change(browser, current="not-my-password")
            assert refused.status_code == 400
            assert "Mot de passe actuel incorrect." in refused.text
            assert 'aria-describedby="actuel-error"' in refused.text
        assert await stored(platform, name) == before  # hash and sealed key bytes unchanged
        assert (await elsewhere.get("/espace")).status_code == 200  # no session ended
        # The lockout counted each one: now even the right password is not looked at.
        locked = await change(browser)
        assert locked.status_code == 429 and "Retry-After" in locked.headers
        assert "Trop de tentatives" in html.unescape(locked.text)
    async with browser_of(platform) as third:
        assert (await login(third, name)).status_code == 429
    assert await stored(platform, name) == before


async def test_a_bad_new_password_or_a_missing_csrf_changes_nothing(
    platform: Platform, browser: httpx.AsyncClient
) -> None:
    name = f"dr.{uuid.uuid4().hex[:8]}"
    await create_user(platform.engine, name, PASSWORD, Role.PRESCRIBER, "Dr Test")
    assert (await login(browser, name)).status_code == 303
    before = await stored(platform, name)
    mismatch = await change(browser, confirmation="another-long-passphrasE")
    assert mismatch.status_code == 400
    assert "La confirmation ne correspond pas au nouveau mot de passe." in mismatch.text
    short = await change(browser, new="court")
    assert short.status_code == 400 and "Au moins 12 caractères." in html.unescape(short.text)
    same = await change(browser, new=PASSWORD)
    assert same.status_code == 400 and "différent de l&#39;actuel" in same.text
    empty = await change(browser, current="")
    assert empty.status_code == 400 and "Saisissez votre mot de passe actuel." in empty.text
    forged = await change(browser, csrf="forged")
    assert forged.status_code == 403 and "rien n'a été fait" in html.unescape(forged.text)
    token = csrf_of(await browser.get(PAGE))
    latin1 = f"csrf={token}&actuel={PASSWORD}&nouveau=mot-de-passe-\xe9t\xe9&confirmation=x"
    not_utf8 = await browser.post(
        PAGE,
        content=latin1.encode("latin-1"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.text  # a French page, not a 500
    assert await stored(platform, name) == before
    async with browser_of(platform) as again:
        assert (await login(again, name)).status_code == 303  # the password is still the old


async def test_someone_not_signed_in_is_sent_to_the_login_page(browser: httpx.AsyncClient) -> None:
    for method in ("GET", "POST"):
        answer = await browser.request(method, PAGE, data={"actuel": PASSWORD})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/connexion?suite=/espace/mot-de-passe"
