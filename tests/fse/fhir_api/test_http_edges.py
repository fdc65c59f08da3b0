"""HTTP edges of the FHIR API: bad bytes, long values, non-ASCII digits, formats and versions
the server does not speak, oversized URLs, 405s that say what is allowed, an OpenAPI document
that declares what the API answers. Every refusal is an OperationOutcome and stores nothing."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from openapi_spec_validator import validate

from fse.errors import ErrorCode
from fse.fhir_api.negotiation import MAX_URL_BYTES
from tests.builders import FHIR_JSON, charge_item, create, patient
from tests.conftest import Platform
from tests.fse.fhir_api.test_errors import assert_outcome

FORM = {"content-type": "application/x-www-form-urlencoded"}


def ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


# -- bytes that are not UTF-8 ------------------------------------------------------------------


@pytest.mark.parametrize(
    "form", [b"name=\xff", b"name=%FF", b"name=Al%C3", b"family=x&name=\xc3\x28"]
)
async def test_search_form_that_is_not_utf8_is_400_naming_the_parameter(
    client: httpx.AsyncClient, form: bytes
) -> None:
    response = await client.post("/fhir/Patient/_search", content=form, headers=FORM)
    assert_outcome(response, 400, ErrorCode.INVALID_SEARCH_PARAMETER, "name")


async def test_query_string_that_is_not_utf8_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/fhir/Patient?family=%FF%FE")
    assert_outcome(response, 400, ErrorCode.INVALID_SEARCH_PARAMETER, "family")
    response = await client.get("/fhir/Patient/_history?_since=%FF")
    assert_outcome(response, 400, ErrorCode.INVALID_SEARCH_PARAMETER, "_since")


async def test_search_form_of_another_media_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/fhir/Patient/_search", content=b"name=x", headers={"content-type": "text/plain"}
    )
    assert_outcome(response, 415, ErrorCode.UNSUPPORTED_MEDIA_TYPE)


# -- string values longer than the indexed prefix ----------------------------------------------

PREFIX = "a" * 255


async def long_families(client: httpx.AsyncClient) -> dict[str, str]:
    """Three insured whose family names share their first 255 characters."""
    made = {}
    for family, immat, cin in (
        (PREFIX + "xyz", "123456789", "BE123456"),
        (PREFIX + "xyw", "987654321", "A654321"),
        (PREFIX + "zzz", "234567891", "BK987654"),
    ):
        made[family] = (await create(client, patient(immat=immat, cin=cin, family=family)))["id"]
    return made


async def family_search(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.post("/fhir/Patient/_search", data=params, headers=FORM)
    assert response.status_code == 200, response.text
    return response.json()


async def test_long_string_search_compares_the_whole_value(client: httpx.AsyncClient) -> None:
    made = await long_families(client)
    xyz, xyw, zzz = made[PREFIX + "xyz"], made[PREFIX + "xyw"], made[PREFIX + "zzz"]
    assert ids(await family_search(client, family=PREFIX + "zzz")) == [zzz]
    assert ids(await family_search(client, family=PREFIX + "zzq")) == []
    assert sorted(ids(await family_search(client, family=PREFIX + "xy"))) == sorted([xyz, xyw])
    assert ids(await family_search(client, family=PREFIX.upper() + "XYZ")) == [xyz]
    assert ids(await family_search(client, **{"family:exact": PREFIX + "xyz"})) == [xyz]
    assert ids(await family_search(client, **{"family:exact": PREFIX + "xy"})) == []
    assert ids(await family_search(client, **{"family:contains": "a" * 254 + "xyw"})) == [xyw]
    both = await family_search(client, family=PREFIX + "x", _total="accurate")
    assert both["total"] == 2
    assert (await family_search(client, family=PREFIX + "q", _total="accurate"))["total"] == 0


async def test_long_string_search_pages_through_the_whole_matches(
    client: httpx.AsyncClient,
) -> None:
    made = await long_families(client)
    first = await family_search(client, family=PREFIX + "x", _count="1", _total="accurate")
    assert first["total"] == 2 and len(ids(first)) == 1
    following = [link["url"] for link in first["link"] if link["relation"] == "next"]
    assert following
    second = (await client.get(following[0])).json()
    assert len(ids(second)) == 1
    assert not [link for link in second["link"] if link["relation"] == "next"]
    assert sorted(ids(first) + ids(second)) == sorted([made[PREFIX + "xyz"], made[PREFIX + "xyw"]])


async def test_long_chained_string_value_is_refused_not_misread(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/fhir/Claim", params={"patient.family": PREFIX + "zzz"})
    assert_outcome(response, 400, ErrorCode.INVALID_SEARCH_PARAMETER, "patient.family")


# -- only ASCII digits are numbers -------------------------------------------------------------

ARABIC_INDIC_THREE = "\u0663"
ARABIC_INDIC_2026 = "\u0662\u0660\u0662\u0666"


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("Patient", {"_count": ARABIC_INDIC_THREE}, "_count"),
        ("Patient", {"_count": "\uff13"}, "_count"),  # fullwidth 3
        ("Patient/_history", {"_count": ARABIC_INDIC_THREE}, "_count"),
        ("Patient", {"_lastUpdated": ARABIC_INDIC_2026}, "_lastUpdated"),
        ("Patient", {"_lastUpdated": "ge" + ARABIC_INDIC_2026}, "_lastUpdated"),
        ("Patient", {"birthdate": "1978-04-\u0661\u0662"}, "birthdate"),
        ("Patient/_history", {"_since": ARABIC_INDIC_2026}, "_since"),
        ("ChargeItem", {"quantity": "\u0663\u0660"}, "quantity"),
        ("ChargeItem", {"quantity": "gt" + ARABIC_INDIC_THREE}, "quantity"),
        ("ChargeItem", {"quantity": "NaN"}, "quantity"),
        ("ChargeItem", {"quantity": "-Infinity"}, "quantity"),
        ("ChargeItem", {"quantity": "1e999999"}, "quantity"),
        ("ChargeItem", {"quantity": "1_000"}, "quantity"),
    ],
)
async def test_numbers_are_ascii_digits(
    client: httpx.AsyncClient, path: str, params: dict[str, str], name: str
) -> None:
    response = await client.get(f"/fhir/{path}", params=params)
    assert_outcome(response, 400, ErrorCode.INVALID_SEARCH_PARAMETER, name)


async def test_versions_are_ascii_digits(client: httpx.AsyncClient, platform: Platform) -> None:
    created = await create(client, patient())
    response = await client.get(f"/fhir/Patient/{created['id']}/_history/\u0661")
    assert_outcome(response, 404, ErrorCode.NOT_FOUND)
    before = await platform.row_counts()
    response = await client.put(
        f"/fhir/Patient/{created['id']}",
        json={**created, "gender": "male"},
        headers={**FHIR_JSON, "If-Match": b'W/"\xb2"'},  # latin-1 superscript two: isdigit()
    )
    assert_outcome(response, 400, ErrorCode.INVALID_REQUEST)
    assert await platform.row_counts() == before


async def test_numbers_still_search(client: httpx.AsyncClient) -> None:
    owner = await create(client, patient())
    made = await create(client, charge_item(owner["id"], quantity={"value": 30}))
    for value in ("30", "gt5", "3e1", "30.0", "-1e-3", "ge2.5E+1"):
        found = await client.get("/fhir/ChargeItem", params={"quantity": value, "_count": "3"})
        assert found.status_code == 200, (value, found.text)
        assert (made["id"] in ids(found.json())) == (value != "-1e-3"), value


# -- formats: only JSON, only FHIR R4 ----------------------------------------------------------

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+xml",
        "application/xml, text/html",
        "application/fhir+json;q=0, application/fhir+xml",
        "application/fhir+json; fhirVersion=3.0",
        "text/turtle, */*;q=0",
    ],
)
async def test_an_accept_admitting_no_json_is_406(
    client: httpx.AsyncClient, platform: Platform, accept: str
) -> None:
    assert_outcome(
        await client.get("/fhir/Patient", headers={"accept": accept}),
        406,
        ErrorCode.NOT_ACCEPTABLE,
    )
    before = await platform.row_counts()
    response = await client.post(
        "/fhir/Patient", json=patient(), headers={**FHIR_JSON, "accept": accept}
    )
    assert_outcome(response, 406, ErrorCode.NOT_ACCEPTABLE)
    assert await platform.row_counts() == before


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "*/*",
        "application/json",
        "application/fhir+json",
        "application/fhir+json; fhirVersion=4.0",
        "application/*",
        "application/fhir+xml;q=1, application/fhir+json;q=0.5",
        BROWSER_ACCEPT,
    ],
)
async def test_an_accept_admitting_json_is_served(
    client: httpx.AsyncClient, accept: str | None
) -> None:
    headers = {} if accept is None else {"accept": accept}
    response = await client.get("/fhir/Patient", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")


@pytest.mark.parametrize(
    "value", ["xml", "application/fhir+xml", "text/html", "turtle", "application/json+xml"]
)
async def test_format_other_than_json_is_406(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/fhir/Patient", params={"_format": value})
    assert_outcome(response, 406, ErrorCode.NOT_ACCEPTABLE, "_format")
    response = await client.get("/fhir/metadata", params={"_format": value})
    assert_outcome(response, 406, ErrorCode.NOT_ACCEPTABLE, "_format")


@pytest.mark.parametrize(
    "query",
    [
        "_format=json",
        "_format=application/json",
        "_format=application/fhir%2Bjson",
        "_format=application/fhir+json",  # '+' read as a space
        "_format=application/fhir%2Bjson;fhirVersion=4.0",
    ],
)
async def test_format_json_is_served(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/fhir/Patient?{query}", headers={"accept": "*/*"})
    assert response.status_code == 200, response.text


async def test_html_pages_keep_answering_browsers(client: httpx.AsyncClient) -> None:
    for path in ("/", "/connexion"):
        response = await client.get(path, headers={"accept": "text/html"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("version", ["3.0", "1.0.2", "5.0", "4.3", "R4", ""])
async def test_a_body_of_another_fhir_version_is_415(
    client: httpx.AsyncClient, platform: Platform, version: str
) -> None:
    before = await platform.row_counts()
    response = await client.post(
        "/fhir/Patient",
        json=patient(),
        headers={"content-type": f"application/fhir+json; fhirVersion={version}"},
    )
    assert_outcome(response, 415, ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    assert await platform.row_counts() == before


@pytest.mark.parametrize("version", ["4.0", "4.0.1"])
async def test_a_body_of_fhir_r4_is_stored(client: httpx.AsyncClient, version: str) -> None:
    response = await client.post(
        "/fhir/Patient",
        json=patient(),
        headers={"content-type": f'application/fhir+json; charset=utf-8; fhirVersion="{version}"'},
    )
    assert response.status_code == 201, response.text


# -- URL length --------------------------------------------------------------------------------


async def test_url_over_the_limit_is_414(client: httpx.AsyncClient) -> None:
    response = await client.get("/fhir/Patient", params={"family": "a" * MAX_URL_BYTES})
    assert_outcome(response, 414, ErrorCode.URI_TOO_LONG)
    under = await client.get("/fhir/Patient", params={"family": "a" * (MAX_URL_BYTES - 100)})
    assert under.status_code == 200, under.text


# -- 405 says what is allowed ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/fhir/Patient/p1", {"GET", "HEAD", "PUT", "DELETE"}),
        ("POST", "/fhir/Patient/p1", {"GET", "HEAD", "PUT", "DELETE"}),
        ("DELETE", "/fhir/Patient", {"GET", "HEAD", "POST"}),
        ("PUT", "/fhir/Patient", {"GET", "HEAD", "POST"}),
        ("GET", "/fhir", {"POST"}),
        ("PUT", "/fhir/Claim/c1", {"GET", "HEAD"}),
        ("DELETE", "/fhir/Claim/c1", {"GET", "HEAD"}),
        ("PATCH", "/fhir/Claim/c1", {"GET", "HEAD"}),
        ("POST", "/fhir/MedicationDispense", {"GET", "HEAD"}),
        ("DELETE", "/fhir/MedicationDispense", {"GET", "HEAD"}),
        ("PUT", "/fhir/AuditEvent/a1", {"GET", "HEAD"}),
        ("PUT", "/fhir/ClaimResponse/r1", {"GET", "HEAD"}),
        ("DELETE", "/fhir/Patient/p1/_history", {"GET", "HEAD"}),
        ("PUT", "/fhir/Patient/unknown-id", {"GET", "HEAD", "DELETE"}),
        ("GET", "/fhir/Patient/_search", {"POST"}),
        ("PUT", "/fhir/Patient/_search", {"POST"}),
        ("DELETE", "/fhir/Patient/_search", {"POST"}),
    ],
)
async def test_405_lists_what_the_url_allows(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    content = b"{}" if method in ("POST", "PUT", "PATCH") else None
    if path == "/fhir/Patient/unknown-id":  # update as create
        content = orjson.dumps({**patient(), "id": "unknown-id"})
    response = await client.request(method, path, content=content, headers=FHIR_JSON)
    code = ErrorCode.METHOD_NOT_ALLOWED
    if path == "/fhir/Patient/unknown-id":
        code = ErrorCode.UPDATE_CREATE_NOT_SUPPORTED
    assert_outcome(response, 405, code)
    listed = {m.strip() for m in response.headers["allow"].split(",")}
    assert listed == allowed


@pytest.mark.parametrize("path", ["/fhir/metadata", "/fhir/Patient?_count=1", "/health", "/"])
async def test_head_answers_as_get_without_a_body(client: httpx.AsyncClient, path: str) -> None:
    """RFC 9110: a server that answers GET answers HEAD, same status and headers, no body."""
    await create(client, patient())
    got = await client.get(path)
    head = await client.head(path)
    assert head.status_code == got.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    if "/Patient" not in path:  # a search's Bundle names its own moment: its length may differ
        assert head.headers["content-length"] == got.headers["content-length"]


async def test_head_goes_through_the_same_doors(platform: Platform) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=platform.app), base_url="http://test"
    ) as anonymous:
        answer = await anonymous.head("/fhir/Patient")
    assert answer.status_code == 401 and answer.content == b""


# -- the OpenAPI document ----------------------------------------------------------------------


async def test_openapi_declares_fhir_answers(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    text = str(document)
    assert "HTTPValidationError" not in text
    schemas = document["components"]["schemas"]
    assert schemas["OperationOutcome"]["properties"]["resourceType"]["enum"] == ["OperationOutcome"]
    outcome_ref = {"$ref": "#/components/schemas/OperationOutcome"}
    for path, item in document["paths"].items():
        if not path.startswith("/fhir"):
            continue
        for method, operation in item.items():
            responses = operation["responses"]
            assert "default" in responses, (method, path)
            for status, answer in responses.items():
                content = answer.get("content", {})
                if status.startswith(("4", "5")) or status == "default":
                    assert content == {"application/fhir+json": {"schema": outcome_ref}}, (
                        method,
                        path,
                        status,
                    )
                elif status.startswith("2") and status not in ("202", "204"):
                    assert set(content) <= {"application/fhir+json", "application/fhir+ndjson"} or (
                        path == "/fhir/$export-status/{job_id}"  # the Bulk Data manifest
                    )
                    assert content, (method, path, status)
    search = document["paths"]["/fhir/{rtype}"]["get"]["responses"]
    assert {"200", "400", "401", "403", "404", "406", "414", "429"} <= set(search)
    create_ = document["paths"]["/fhir/{rtype}"]["post"]["responses"]
    assert {"201", "400", "405", "406", "409", "412", "415", "422"} <= set(create_)
    update = document["paths"]["/fhir/{rtype}/{rid}"]["put"]["responses"]
    assert {"200", "400", "404", "405", "409", "412", "415", "422"} <= set(update)
    delete = document["paths"]["/fhir/{rtype}/{rid}"]["delete"]["responses"]
    assert "204" in delete and "content" not in delete["204"]


async def test_openapi_document_is_valid_openapi_3(client: httpx.AsyncClient) -> None:
    validate((await client.get("/openapi.json")).json())
