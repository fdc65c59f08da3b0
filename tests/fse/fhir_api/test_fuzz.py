"""Fuzz the whole HTTP API from its OpenAPI document (schemathesis): never a 5xx, and every /fhir
refusal a FHIR OperationOutcome with a stable code (issue "Never a 500, never a lie").

The document alone would mostly produce unknown types and ids (404s): the fuzzer is given the
supported resource types, the ids of the demo data it seeded, the search parameters and a body
shaped like a resource, so generated requests reach the parsers, the search and the validator.
On SQLite in-process, then a smaller run on PostgreSQL and Redis. A finding goes to
fuzz_regressions.py, replayed on both databases by test_fuzz_regressions.py.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as seed_of
from schemathesis.python import asgi

from fse.seed import demo_bundle
from fse.store.search_params import SEARCH_PARAMS, SUPPORTED_TYPES
from tests.builders import CIN, FSE, IMMAT, INPE
from tests.conftest import Platform, build_platform
from tests.fse.fhir_api.honest_answers import dishonesty
from tests.services import drop_pg_database

SQLITE_EXAMPLES = 100
POSTGRESQL_EXAMPLES = 25
"""Examples per operation (28 operations): about 30 s on SQLite and 20 s on PostgreSQL on 2 idle
cores. FSE_FUZZ_SEED picks another deterministic sequence to explore further."""

OPERATIONS = ["$validate", "$submit", "$everything", "$review", "$publish-tariffs", "$status"]
PREFIX = "(eq|ne|gt|lt|ge|le|sa|eb|ap)?"
DATE = (  # calendar edges are likelier than in uniform digits: they are where bugs live
    r"(0001|1970|2026|9999|[0-9]{4})(-(01|12|[0-9]{2})(-(01|31|[0-9]{2})"
    r"(T(00|23|[0-9]{2}):[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|[+-](00|05|14|[0-9]{2}):[0-9]{2})?)?)?)?"
)
DATE_LIKE = f"^{PREFIX}{DATE}$"
NUMBER_LIKE = (
    f"^{PREFIX}"
    + r"-?[0-9]{1,24}(\.[0-9]{1,12})?(e[+-]?[0-9]{1,4})?(\|[a-z:/.]{0,20}\|[A-Za-z%]{0,5})?$"
)
DIGITS = r"^[0-9]{1,24}$"
LONG_DIGITS = r"^[0-9]{15,24}$"
ANY = {"type": "string"}


def _either(*schemas: dict[str, Any]) -> dict[str, Any]:
    """One of ``schemas`` or any other string. ("Any string" alone would swallow them: the
    generator merges a union into the widest branch.)"""
    return {"anyOf": [*schemas, {"type": "string", "not": {"anyOf": list(schemas)}}]}


def _search_parameters() -> list[dict[str, Any]]:
    """Every declared search parameter, a few modifiers and the control parameters."""
    kinds: dict[str, str] = {}
    for params in SEARCH_PARAMS.values():
        for param in params:
            kinds.setdefault(param.name, param.type)
    kinds |= {"_lastUpdated": "date", "_id": "token"}
    schemas: dict[str, dict[str, Any]] = {}
    for name, kind in kinds.items():
        if kind == "date":
            schemas[name] = _either({"type": "string", "pattern": DATE_LIKE})
        elif kind in ("number", "quantity"):
            schemas[name] = _either({"type": "string", "pattern": NUMBER_LIKE})
        else:
            schemas[name] = ANY
    for name in ("name:exact", "name:contains", "identifier:not", "birthdate:missing"):
        schemas[name] = ANY
    schemas["patient.identifier"] = _either({"enum": [f"{IMMAT}|123456789", f"{CIN}|BE123456"]})
    schemas["_count"] = _either({"type": "string", "pattern": DIGITS})
    schemas["_sort"] = _either({"enum": ["_lastUpdated", "-_lastUpdated", "birthdate", "created"]})
    schemas["_total"] = _either({"enum": ["none", "estimate", "accurate"]})
    schemas["_include"] = _either({"enum": ["Claim:patient", "Coverage:beneficiary", "*"]})
    schemas["_revinclude"] = _either({"enum": ["Coverage:beneficiary", "Claim:patient"]})
    schemas["_format"] = _either({"enum": ["json", "application/fhir+json", "xml"]})
    for name in ("_cursor", "_summary", "_elements"):
        schemas[name] = ANY
    return [{"name": n, "in": "query", "required": False, "schema": s} for n, s in schemas.items()]


def _query(*names_and_schemas: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "query", "required": False, "schema": s} for n, s in names_and_schemas
    ]


def _resource_like() -> dict[str, Any]:
    """A body shaped like a FHIR resource (or Bundle, Parameters): real types, dates, names,
    identifiers, references and extensions, with free values."""
    date = _either(
        {"type": "string", "pattern": DATE_LIKE.replace("(eq|ne|gt|lt|ge|le|sa|eb|ap)?", "")}
    )
    reference = {"type": "object", "properties": {"reference": ANY, "display": ANY}}
    extension = {
        "type": "object",
        "properties": {
            "url": ANY,
            "valueString": ANY,
            "valueDate": date,
            "extension": {"type": "array"},
        },
    }
    return {
        "type": "object",
        "required": ["resourceType"],
        "properties": {
            "resourceType": {"enum": [*SUPPORTED_TYPES, "Bundle", "Parameters"]},
            "id": ANY,
            "meta": {
                "type": "object",
                "properties": {"versionId": ANY, "profile": {"type": "array", "items": ANY}},
            },
            "status": ANY,
            "type": _either({"enum": ["transaction", "batch", "searchset"]}),
            "birthDate": date,
            "created": date,
            "authoredOn": date,
            "gender": _either({"enum": ["female", "male", "other", "unknown"]}),
            "name": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"family": ANY, "given": {"type": "array", "items": ANY}},
                },
            },
            "identifier": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "system": _either({"enum": [IMMAT, CIN, INPE, FSE]}),
                        "value": ANY,
                    },
                },
            },
            "patient": reference,
            "subject": reference,
            "beneficiary": reference,
            "extension": {"type": "array", "items": extension},
            "entry": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "fullUrl": ANY,
                        "resource": {"type": "object"},
                        "request": {
                            "type": "object",
                            "properties": {
                                "method": _either({"enum": ["GET", "POST", "PUT", "DELETE"]}),
                                "url": ANY,
                            },
                        },
                    },
                },
            },
            "parameter": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": ANY, "valueString": ANY}},
            },
        },
    }


def fuzzable(document: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """The app's OpenAPI document with real values offered for every parameter and body."""
    document = copy.deepcopy(document)
    path_values = {
        "rtype": _either({"enum": list(SUPPORTED_TYPES)}),
        "rid": _either({"enum": sorted(ids)}),
        "vid": _either({"enum": ["1", "2"]}, {"type": "string", "pattern": LONG_DIGITS}),
        "name": _either({"enum": OPERATIONS}),
    }
    accept = _either(
        {"enum": ["application/fhir+json", "application/json", "*/*", "application/fhir+xml"]}
    )
    body = {"anyOf": [_resource_like(), {"type": "object"}]}
    history = _query(
        ("_count", _either({"type": "string", "pattern": DIGITS})),
        ("_since", _either({"type": "string", "pattern": DATE_LIKE})),
        ("_cursor", ANY),
    )
    export = [
        *_query(
            ("_type", _either({"enum": ["Patient", "Claim,Patient", "Unknown"]})),
            ("_since", _either({"type": "string", "pattern": DATE_LIKE})),
            ("_outputFormat", _either({"enum": ["application/fhir+ndjson", "ndjson"]})),
        ),
        {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "schema": _either({"enum": ["respond-async"]}),
        },
    ]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            parameters = operation.setdefault("parameters", [])
            for parameter in parameters:
                if parameter["in"] == "path" and parameter["name"] in path_values:
                    parameter["schema"] = path_values[parameter["name"]]
            if path.startswith("/fhir"):
                parameters.append(
                    {"name": "Accept", "in": "header", "required": False, "schema": accept}
                )
            content = operation.get("requestBody", {}).get("content", {})
            if "application/fhir+json" in content:
                content["application/fhir+json"]["schema"] = body
            if path == "/fhir/{rtype}" and method == "get":
                parameters.extend(_search_parameters())
            if path == "/fhir/{rtype}/_search":
                form = {
                    "type": "object",
                    "properties": {p["name"]: p["schema"] for p in _search_parameters()},
                }
                operation["requestBody"] = {
                    "required": False,
                    "content": {"application/x-www-form-urlencoded": {"schema": form}},
                }
            if path.endswith("/_history"):
                parameters.extend(history)
            if path.endswith("$export"):
                parameters.extend(export)
    return document


@dataclass
class Target:
    platform: Platform
    ids: dict[str, str]
    """Seeded id -> its resource type."""


def _start(backend: str, tmp: Path) -> tuple[Platform, str]:
    async def build() -> tuple[Platform, str]:
        platform, url = await build_platform(backend, tmp, audit_seal_seconds=0)
        await platform.engine.dispose()  # the app runs on schemathesis's event loop from now on
        return platform, url

    return asyncio.run(build())


LOCATION = re.compile(r"(?P<rtype>[A-Za-z]+)/(?P<rid>[A-Za-z0-9.-]+)/_history/")


def _seed(platform: Platform) -> dict[str, str]:
    """Load the demo data through the API; the ids it was given, with their types."""
    with asgi.get_client(platform.app) as http:
        response = http.post(
            "/fhir",
            data=orjson.dumps(demo_bundle()),
            headers={
                "Authorization": f"Bearer {platform.token}",
                "Content-Type": "application/fhir+json",
            },
        )
    assert response.status_code == 200, response.text[:1000]
    ids = {}
    for entry in response.json()["entry"]:
        found = LOCATION.search(entry["response"]["location"])
        assert found is not None, entry["response"]
        ids[found["rid"]] = found["rtype"]
    return ids


def _target(backend: str, tmp: Path) -> Iterator[Target]:
    platform, url = _start(backend, tmp)
    try:
        yield Target(platform, _seed(platform))
    finally:
        asgi.shutdown_lifespans()  # runs the app's shutdown: tasks stopped, engine closed
        if backend == "postgresql":
            asyncio.run(drop_pg_database(url))


SEARCH_PATHS = ("/fhir/{rtype}", "/fhir/{rtype}/_search")


def _owners() -> dict[str, tuple[str, ...]]:
    """Search parameter name -> the types that declare it."""
    owners: dict[str, tuple[str, ...]] = {}
    for rtype, params in SEARCH_PARAMS.items():
        for param in params:
            owners[param.name] = (*owners.get(param.name, ()), rtype)
    return owners


OWNERS = _owners()
WRITE_PATHS = ("/fhir/{rtype}", "/fhir/{rtype}/{rid}")


def _schema(target: Target) -> Any:
    schema = schemathesis.openapi.from_dict(fuzzable(target.platform.app.openapi(), target.ids))
    schema.app = target.platform.app

    @schema.hook
    def map_case(_context: Any, case: Any) -> Any:
        """Seeded ids under their own type; a resource body posted or put to its own type (and
        id), so that requests get past the first checks to the deeper ones."""
        params = case.path_parameters or {}
        if params.get("rid") in target.ids:
            params["rtype"] = target.ids[params["rid"]]
        if case.path in SEARCH_PATHS and params.get("rtype") in SUPPORTED_TYPES:
            query = {**(case.query or {}), **(case.body if isinstance(case.body, dict) else {})}
            names = [n.split(":")[0].split(".")[0] for n in sorted(query)]
            owned = [OWNERS[n] for n in names if n in OWNERS]
            if owned and params["rtype"] not in owned[0]:
                params["rtype"] = owned[0][0]
        body = case.body
        writes = case.method.upper() in ("POST", "PUT") and case.path in WRITE_PATHS
        if writes and isinstance(body, dict) and body.get("resourceType") in SUPPORTED_TYPES:
            params["rtype"] = body["resourceType"]
            if case.method.upper() == "PUT" and "rid" in params:
                body["id"] = params["rid"]
        return case

    return schema


def fuzz(target: Target, examples: int) -> tuple[list[str], Counter[str]]:
    """Every operation of the document, ``examples`` generated requests each; the dishonest
    answers found (one per operation, status and reason) and the count of answers per status."""
    schema = _schema(target)
    findings: dict[tuple[str, int, str], str] = {}
    statuses: Counter[str] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    # Deletes last: the other operations meet the seeded resources first.
    for operation in sorted(operations, key=lambda o: o.method.upper() == "DELETE"):
        _fuzz_operation(operation, target.platform.token, examples, findings, statuses)
    return list(findings.values()), statuses


def _fuzz_operation(
    operation: Any,
    token: str,
    examples: int,
    findings: dict[tuple[str, int, str], str],
    statuses: Counter[str],
) -> None:
    @seed_of(int(os.environ.get("FSE_FUZZ_SEED", "2026")))
    @settings(max_examples=examples, **FUZZ_SETTINGS)
    @given(operation.as_strategy())
    def check(case: Any) -> None:
        try:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
        except Exception as error:  # the app answered 500 and re-raised (in-process transport)
            key = (operation.label, 500, type(error).__name__)
            findings.setdefault(key, f"500 {error!r:.300}\n  {case.as_curl_command()}")
            statuses[f"{operation.label} 500"] += 1
            return
        statuses[f"{operation.label} {response.status_code}"] += 1
        problem = dishonesty(
            case.formatted_path,
            response.status_code,
            response.headers.get("content-type", [None])[0],
            response.content,
        )
        if problem is not None:
            key = (operation.label, response.status_code, problem[:60])
            findings.setdefault(key, f"{problem}\n  {case.as_curl_command()}")

    check()


FUZZ_SETTINGS: dict[str, Any] = {
    "database": None,  # nothing written into the repository: findings go to fuzz_regressions.py
    "deadline": None,
    "derandomize": False,
    "phases": [Phase.explicit, Phase.generate],  # every finding is reported, none shrunk
    "suppress_health_check": list(HealthCheck),
}


@pytest.fixture(scope="module")
def sqlite_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from _target("sqlite", tmp_path_factory.mktemp("fuzz-sqlite"))


@pytest.fixture(scope="module")
def postgresql_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from _target("postgresql", tmp_path_factory.mktemp("fuzz-postgresql"))


def _assert_honest(findings: list[str], statuses: Counter[str]) -> None:
    # The fuzzer reached real resources (else it would only be exercising 404s).
    assert statuses["GET /fhir/{rtype}/{rid} 200"] > 0, statuses
    assert statuses["GET /fhir/{rtype} 200"] > 0, statuses
    assert not findings, "\n".join(findings)


def test_fuzzed_requests_get_honest_answers_on_sqlite(sqlite_target: Target) -> None:
    _assert_honest(*fuzz(sqlite_target, SQLITE_EXAMPLES))


def test_fuzzed_requests_get_honest_answers_on_postgresql(postgresql_target: Target) -> None:
    _assert_honest(*fuzz(postgresql_target, POSTGRESQL_EXAMPLES))
