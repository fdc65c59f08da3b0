"""Parsing and structural validation of FHIR resources (fhir.resources R4B models).

Parse once (orjson checks, ``fse.fhir_json`` keeps the decimals exact), validate the dict once
with the model, and keep the dict: the model is never used to serialise (that would cost about
a millisecond per resource).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ValidationError

from fhir_profiles.validator import profile_of
from fhir_profiles.validator import validate as profile_problems
from fse import fhir_json
from fse.errors import BadRequest, ErrorCode, Issue, NotFound, Unprocessable
from fse.limits import check_body, index_issues
from fse.store.search_params import SUPPORTED_TYPES


def name_of(resource: dict[str, Any]) -> str:
    """How a person or organisation is called on screen: the name's text, else given and
    family, else the Organization's name, else its reference."""
    if isinstance(resource.get("name"), str):
        return str(resource["name"])
    for name in resource.get("name", []) or []:
        if name.get("text"):
            return str(name["text"])
        given = " ".join(name.get("given", []) or [])
        return f"{given} {name.get('family', '')}".strip()
    return f"{resource['resourceType']}/{resource.get('id')}"


def require_supported(resource_type: str) -> str:
    if resource_type not in SUPPORTED_TYPES:
        raise NotFound(
            f"resource type '{resource_type}' is not served here",
            code=ErrorCode.UNKNOWN_RESOURCE_TYPE,
        )
    return resource_type


@cache
def model_class(resource_type: str) -> type[BaseModel]:
    return get_fhir_model_class(resource_type)


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, within the input limits (fse/limits.py): every door that
    reads a FHIR body reads it here. orjson checks it and the limits are applied first (so
    its refusals stand: NaN, a number beyond a double, a lone surrogate, nesting); then the
    body is read again with its decimals exact (``fse.fhir_json``: ``150.00`` stays so)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", code=ErrorCode.MALFORMED_JSON) from exc
    if not isinstance(value, dict):
        raise BadRequest("body must be a JSON object", code=ErrorCode.MALFORMED_JSON)
    check_body(value, body)
    exact: dict[str, Any] = fhir_json.loads(body)
    return exact


def check_type(resource: dict[str, Any], expected: str) -> None:
    actual = resource.get("resourceType")
    if actual != expected:
        raise BadRequest(
            f"resourceType is {actual!r}, expected {expected!r}",
            ("resourceType",),
            code=ErrorCode.WRONG_RESOURCE_TYPE,
        )


def fhir_path(resource_type: str, loc: tuple[int | str, ...]) -> str:
    path = resource_type
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


PROBLEM_ISSUE_TYPES = {
    "cardinality": "required",
    "slice": "required",
    "binding": "code-invalid",
    "invariant": "invariant",
    "profile": "not-supported",
}


def validation_issues(resource: dict[str, Any]) -> list[Issue]:
    """Every problem of the resource, each with its element path: first the R4B structure, then
    (on a well-formed resource) the ranges the index holds and the AMO guide's profiles and
    identifier rules."""
    structural = _structure_issues(resource)
    if structural:
        return structural
    return index_issues(resource) + [
        Issue(
            ErrorCode.PROFILE_VIOLATION,
            f"{problem.path}: {problem.message}",
            (problem.path,),
            issue_type=PROBLEM_ISSUE_TYPES.get(problem.rule, "value"),
        )
        for problem in profile_problems(resource)
    ]


def declare_profile(resource: dict[str, Any]) -> None:
    """Record in meta.profile the AMO profile (url|version) the resource was validated against."""
    canonical = profile_of(resource)
    if canonical is None:
        return
    meta = resource.setdefault("meta", {})
    claimed = meta.setdefault("profile", [])
    if canonical not in claimed and canonical.split("|")[0] not in claimed:
        claimed.append(canonical)


def _structure_issues(resource: dict[str, Any]) -> list[Issue]:
    rtype = str(resource.get("resourceType"))
    try:
        model_class(rtype).model_validate(resource)
    except ValidationError as exc:
        return [
            Issue(
                ErrorCode.INVALID_RESOURCE,
                f"{fhir_path(rtype, tuple(e['loc']))}: {e['msg']}",
                (fhir_path(rtype, tuple(e["loc"])),),
                issue_type="structure" if e["type"] == "extra_forbidden" else "invalid",
            )
            for e in exc.errors()
        ]
    return []


def validate(resource: dict[str, Any]) -> None:
    issues = validation_issues(resource)
    if issues:
        raise Unprocessable.of(issues, ErrorCode.INVALID_RESOURCE)
