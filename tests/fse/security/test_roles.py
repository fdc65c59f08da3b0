"""Signed-in people use the FHIR API with their role's cells of the access model: a pharmacist
cannot prescribe, no one dispenses around the pharmacy screen, a prescriber prescribes as
themselves, CNSS agents only read; writes with a session need the CSRF token."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from fse.errors import ErrorCode
from fse.security.users import Role, create_user
from tests.builders import FHIR_JSON, claim, medication_request
from tests.conftest import Platform
from tests.fse.fhir_api.test_errors import assert_outcome
from tests.fse.web.test_login import PASSWORD, csrf_of, login

SignIn = Callable[[Role], Awaitable[tuple[httpx.AsyncClient, dict[str, str]]]]
"""Signs a new user of the role in; returns their browser and the headers of a FHIR write."""


def dispense(patient_ref: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": "urn:oid:1.3.160", "code": "6118000190219"}]
        },
        "subject": {"reference": patient_ref},
        "authorizingPrescription": [{"reference": "MedicationRequest/rx"}],
        "performer": [{"actor": {"reference": "Practitioner/pharmacist"}}],
        "quantity": {"value": 1, "unit": "boîte"},
        "whenHandedOver": "2026-11-21T10:00:00+01:00",
    }


@pytest.fixture
async def session_for_role(platform: Platform) -> AsyncIterator[SignIn]:
    clients: list[httpx.AsyncClient] = []
    await platform.truncate()

    async def signed_in(
        role: Role, practitioner: str | None = None
    ) -> tuple[httpx.AsyncClient, dict[str, str]]:
        username = f"{role.value}.{uuid.uuid4().hex[:8]}"
        await create_user(platform.engine, username, PASSWORD, role, username, practitioner)
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=platform.app), base_url="http://test"
        )
        clients.append(http)
        assert (await login(http, username)).status_code == 303
        token = csrf_of(await http.get("/espace"))
        return http, {**FHIR_JSON, "X-CSRF-Token": token}

    yield signed_in
    for http in clients:
        await http.aclose()


async def test_pharmacist_reads_prescriptions_and_dispenses_but_cannot_prescribe(
    session_for_role,
    platform: Platform,
) -> None:
    http, headers = await session_for_role(Role.PHARMACIST)
    assert (await http.get("/fhir/MedicationRequest")).status_code == 200
    assert (await http.get("/fhir/MedicationDispense")).status_code == 200
    before = await platform.row_counts()
    refused = await http.post(
        "/fhir/MedicationRequest", json=medication_request("Patient/p"), headers=headers
    )
    assert_outcome(refused, 403, ErrorCode.FORBIDDEN, "system/MedicationRequest.c")
    # Dispensing is the pharmacy screen's signed, exactly-once step, never a raw create.
    around = await http.post(
        "/fhir/MedicationDispense", json=dispense("Patient/p"), headers=headers
    )
    assert_outcome(around, 405, ErrorCode.METHOD_NOT_ALLOWED, "MedicationDispense")
    assert await platform.row_counts() == before


async def test_prescriber_prescribes_as_themselves_but_cannot_dispense(
    session_for_role, platform: Platform
) -> None:
    http, headers = await session_for_role(Role.PRESCRIBER, "Practitioner/prescriber")
    created = await http.post(
        "/fhir/MedicationRequest", json=medication_request("Patient/p"), headers=headers
    )
    assert created.status_code == 201
    before = await platform.row_counts()
    for_another = {**medication_request("Patient/p"), "requester": {"reference": "Practitioner/x"}}
    refused = await http.post("/fhir/MedicationRequest", json=for_another, headers=headers)
    assert_outcome(refused, 403, ErrorCode.NOT_OWN_DATA, "MedicationRequest.requester")
    refused = await http.post(
        "/fhir/MedicationDispense", json=dispense("Patient/p"), headers=headers
    )
    assert_outcome(refused, 405, ErrorCode.METHOD_NOT_ALLOWED, "MedicationDispense")
    assert await platform.row_counts() == before


async def test_cnss_agent_reads_but_writes_nothing(session_for_role, platform: Platform) -> None:
    http, headers = await session_for_role(Role.CNSS_AGENT)
    assert (await http.get("/fhir/Claim")).status_code == 200
    refused = await http.post("/fhir/Claim", json=claim("Patient/p"), headers=headers)
    assert_outcome(refused, 403, ErrorCode.FORBIDDEN)


async def test_session_writes_need_the_csrf_token(session_for_role, platform: Platform) -> None:
    http, _ = await session_for_role(Role.PRESCRIBER)
    before = await platform.row_counts()
    for csrf in (None, "forged"):
        sent = {**FHIR_JSON, **({"X-CSRF-Token": csrf} if csrf else {})}
        response = await http.post(
            "/fhir/MedicationRequest", json=medication_request("Patient/p"), headers=sent
        )
        assert_outcome(response, 403, ErrorCode.FORBIDDEN)
    assert await platform.row_counts() == before


async def test_expired_or_forged_session_is_401(platform: Platform) -> None:
    transport = httpx.ASGITransport(app=platform.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", cookies={"fse_session": "forged"}
    ) as http:
        assert_outcome(await http.get("/fhir/Patient"), 401, ErrorCode.UNAUTHENTICATED)
