"""The guide's error CodeSystem is exactly the catalogue the API answers with."""

from __future__ import annotations

from fhir_profiles.guide import code_systems
from fse.errors import ERROR_CODE_SYSTEM, ERROR_DESCRIPTIONS, ErrorCode


def test_error_code_system_matches_the_code() -> None:
    concepts = code_systems()[ERROR_CODE_SYSTEM]["concept"]
    assert [(c["code"], c["display"], c["definition"]) for c in concepts] == [
        (code.value, code.name, ERROR_DESCRIPTIONS[code]) for code in ErrorCode
    ]
