"""`fse sheet verify`: anyone with the published key can check a sheet, and tampering shows."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import httpx
from sqlalchemy import text

from prescriber.cancel import cancel_sheet
from prescriber.history import load_sheet
from prescriber.verify import verify_sheet
from tests.conftest import Platform
from tests.prescriber.test_sheets import FULL_VISIT, sign_as_benali, visit_of
from tests.reimbursement.demo import DR_BENALI, FATIMA, load_demo


def fse_verify(platform: Platform, number: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "fse.cli",
            "sheet",
            "verify",
            number,
            "--database-url",
            platform.settings.database_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_signed_sheet_verifies_even_after_cancellation_and_tampering_shows(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    sheet = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT))
    fhir = platform.app.state.fhir
    verdict = await verify_sheet(fhir, sheet.number)
    assert verdict.valid and "Karim Benali" in verdict.message, verdict.message
    view = await load_sheet(fhir, sheet.number)
    assert view is not None
    await cancel_sheet(fhir, view, refs[DR_BENALI], datetime.now(UTC))
    assert (await verify_sheet(fhir, sheet.number)).valid  # the signed versions are unchanged
    done = fse_verify(platform, sheet.number)
    assert done.returncode == 0 and "signature valide" in done.stdout, done.stderr
    claim_id = next(r for r in sheet.resources if r.startswith("Claim/")).split("/")[1]
    async with platform.engine.begin() as conn:  # someone edits the signed Claim in the database
        rows = await conn.execute(
            text("SELECT pk, content FROM resource_versions WHERE id = :id AND version = 1"),
            {"id": claim_id},
        )
        pk, content = rows.one()
        changed = (content if isinstance(content, str) else str(content)).replace("150.0", "1500.0")
        if platform.backend == "postgresql":
            await conn.execute(
                text("UPDATE resource_versions SET content = CAST(:c AS jsonb) WHERE pk = :pk"),
                {"c": changed, "pk": pk},
            )
        else:
            await conn.execute(
                text("UPDATE resource_versions SET content = :c WHERE pk = :pk"),
                {"c": changed, "pk": pk},
            )
    assert not (await verify_sheet(fhir, sheet.number)).valid
    broken = fse_verify(platform, sheet.number)
    assert broken.returncode == 1 and "SIGNATURE INVALIDE" in broken.stdout
    unknown = fse_verify(platform, "FSE-2026-000000000-00")
    assert unknown.returncode == 1 and "aucune feuille" in unknown.stdout
