"""read, vread, create, update (If-Match), delete, history: what a FHIR client relies on."""

from __future__ import annotations

import httpx

from tests.builders import FHIR_JSON, create, patient


async def test_create_assigns_id_version_and_answers_201_with_location_and_etag(
    client: httpx.AsyncClient,
) -> None:
    body = patient()
    body["id"] = "client-chosen"
    response = await client.post("/fhir/Patient", json=body, headers=FHIR_JSON)
    assert response.status_code == 201
    created = response.json()
    assert created["id"] != "client-chosen"
    assert created["meta"]["versionId"] == "1"
    assert created["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"] == f"http://test/fhir/Patient/{created['id']}/_history/1"
    assert response.headers["content-type"].startswith("application/fhir+json")


async def test_read_returns_the_stored_resource(client: httpx.AsyncClient) -> None:
    created = await create(client, patient())
    response = await client.get(f"/fhir/Patient/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["etag"] == 'W/"1"'


async def test_update_with_current_if_match_creates_version_2(client: httpx.AsyncClient) -> None:
    created = await create(client, patient())
    created["name"][0]["family"] = "Bennani"
    response = await client.put(
        f"/fhir/Patient/{created['id']}", json=created, headers={**FHIR_JSON, "If-Match": 'W/"1"'}
    )
    assert response.status_code == 200
    assert response.json()["meta"]["versionId"] == "2"
    assert response.headers["etag"] == 'W/"2"'
    current = (await client.get(f"/fhir/Patient/{created['id']}")).json()
    assert current["name"][0]["family"] == "Bennani"
    first = (await client.get(f"/fhir/Patient/{created['id']}/_history/1")).json()
    assert first["name"][0]["family"] == "Alaoui"
    assert first["meta"]["versionId"] == "1"


async def test_update_without_if_match_still_versions(client: httpx.AsyncClient) -> None:
    created = await create(client, patient())
    response = await client.put(f"/fhir/Patient/{created['id']}", json=created, headers=FHIR_JSON)
    assert response.json()["meta"]["versionId"] == "2"


async def test_update_makes_search_follow_the_new_content(client: httpx.AsyncClient) -> None:
    created = await create(client, patient(cin="BE123456"))
    created["identifier"][1]["value"] = "BE999999"
    await client.put(f"/fhir/Patient/{created['id']}", json=created, headers=FHIR_JSON)
    old = (await client.get("/fhir/Patient", params={"identifier": "BE123456"})).json()
    new = (await client.get("/fhir/Patient", params={"identifier": "BE999999"})).json()
    assert old.get("entry", []) == []
    assert [e["resource"]["id"] for e in new["entry"]] == [created["id"]]


async def test_delete_is_versioned_and_read_answers_410(client: httpx.AsyncClient) -> None:
    created = await create(client, patient())
    deleted = await client.delete(f"/fhir/Patient/{created['id']}")
    assert deleted.status_code == 204
    assert deleted.headers["etag"] == 'W/"2"'
    gone = await client.get(f"/fhir/Patient/{created['id']}")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert (await client.get(f"/fhir/Patient/{created['id']}/_history/1")).status_code == 200
    again = await client.delete(f"/fhir/Patient/{created['id']}")
    assert again.status_code == 204
    history = (await client.get(f"/fhir/Patient/{created['id']}/_history")).json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    search = (await client.get("/fhir/Patient", params={"identifier": "BE123456"})).json()
    assert search.get("entry", []) == []


async def test_deleted_identifier_can_be_used_again(client: httpx.AsyncClient) -> None:
    created = await create(client, patient())
    await client.delete(f"/fhir/Patient/{created['id']}")
    await create(client, patient())


async def test_instance_history_lists_every_version_newest_first(client: httpx.AsyncClient) -> None:
    created = await create(client, patient())
    for _ in range(2):
        await client.put(f"/fhir/Patient/{created['id']}", json=created, headers=FHIR_JSON)
    history = (await client.get(f"/fhir/Patient/{created['id']}/_history")).json()
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["3", "2", "1"]
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "PUT", "POST"]
    assert history["entry"][0]["response"]["etag"] == 'W/"3"'


async def test_type_history_pages_with_next_links(client: httpx.AsyncClient) -> None:
    for n in range(5):
        await create(client, patient(immat=f"10000000{n}", cin=f"A{n}"))
    seen: list[str] = []
    url: str | None = "/fhir/Patient/_history?_count=2"
    while url:
        page = (await client.get(url)).json()
        seen += [e["resource"]["identifier"][0]["value"] for e in page["entry"]]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert seen == [f"10000000{n}" for n in reversed(range(5))]


async def test_history_since_filters_older_versions(client: httpx.AsyncClient) -> None:
    created = await create(client, patient())
    history = (await client.get("/fhir/Patient/_history", params={"_since": "2999-01-01"})).json()
    assert history.get("entry", []) == []
    history = (await client.get("/fhir/Patient/_history", params={"_since": "2000-01-01"})).json()
    assert [e["resource"]["id"] for e in history["entry"]] == [created["id"]]


async def test_prefer_return_minimal_sends_no_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/fhir/Patient", json=patient(), headers={**FHIR_JSON, "Prefer": "return=minimal"}
    )
    assert response.status_code == 201
    assert response.content == b""
    assert response.headers["location"].startswith("http://test/fhir/Patient/")
