"""A CNSS integrator finds the API from the home page and reads its documentation offline."""

from __future__ import annotations

from playwright.sync_api import Page, expect


def test_home_page_leads_to_the_api_documentation(server: str, page: Page) -> None:
    page.goto(server + "/")
    expect(page.get_by_role("heading", name="Feuille de soins électronique")).to_be_visible()
    page.get_by_role("link", name="Documentation de l'API (OpenAPI)").click()
    expect(page).to_have_url(server + "/docs")
    expect(page.get_by_text("search-type").first).to_be_visible(timeout=15_000)
    expect(page.get_by_text("/fhir/{rtype}/{rid}/_history/{vid}").first).to_be_visible()


def test_capability_statement_link_serves_fhir_json(server: str, page: Page) -> None:
    page.goto(server + "/")
    with page.expect_response(server + "/fhir/metadata") as response_info:
        page.get_by_role("link", name="Déclaration de capacités (CapabilityStatement)").click()
    response = response_info.value
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.json()["resourceType"] == "CapabilityStatement"


def test_demo_data_is_searchable_by_registration_number(
    server: str, page: Page, api_token: str
) -> None:
    url = server + "/fhir/Patient?identifier=https://fse.cnss.ma/fhir/sid/immatriculation|123456789"
    assert page.request.get(url).status == 401
    response = page.request.get(url, headers={"Authorization": f"Bearer {api_token}"})
    assert response.status == 200
    entries = response.json()["entry"]
    assert [e["resource"]["name"][0]["family"] for e in entries] == ["Alaoui"]


def test_docs_show_the_fhir_json_body_of_a_create(server: str, page: Page) -> None:
    page.goto(server + "/docs")
    create = page.locator(".opblock-post", has_text="create (conditional with If-None-Exist)")
    create.locator(".opblock-summary").click()
    expect(create.get_by_text("Request body")).to_be_visible()
    media_type = create.locator(".opblock-section-request-body select").first
    expect(media_type).to_have_value("application/fhir+json")
