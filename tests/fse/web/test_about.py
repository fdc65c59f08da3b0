"""The "à propos" page: public, linked from every page, and carrying the notices the reference
data licences ask for (the ODbL of the CNOPS medicines list, the NGAP list's source)."""

from __future__ import annotations

import html

import httpx


async def test_the_data_sources_are_cited_where_every_page_links(
    browser: httpx.AsyncClient,
) -> None:
    home = await browser.get("/")
    assert '<a href="/a-propos">À propos et sources des données</a>' in home.text
    page = await browser.get("/a-propos")  # no session: public, like the home page
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    text = html.unescape(page.text)
    assert (
        "Contient des données CNOPS — Référentiel des médicaments (data.gov.ma), sous licence ODbL"
        in text
    )
    assert 'href="https://opendatacommons.org/licenses/odbl/1-0/"' in page.text
    assert "en vigueur depuis le 23/06/2014" in text
    assert "NGAP data from github.com/Mkhmalech/medical-api-merng (MIT per package.json)" in text
    login = await browser.get("/connexion")
    assert 'href="/a-propos"' in login.text
