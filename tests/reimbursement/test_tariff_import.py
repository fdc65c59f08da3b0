"""A new TNR version or medicines list published with `fse tariffs import`: a dry run says what
changes; once published, the servers price care on or after its date with it, earlier care not."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from datetime import date
from pathlib import Path

import httpx
import pytest

from reimbursement import feature
from reimbursement.reference_data import DATA
from tests.conftest import Platform
from tests.fse.test_cli import fse
from tests.reimbursement.demo import FATIMA, act, adjudication, claim, load_demo

SUBMIT = "/fhir/Claim/$submit"
C_AT_120 = {
    "id": "tnr-cnss-2026-11-essai",
    "title": "Essai : C à 120 MAD à partir du 21/11/2026",
    "valid_from": "2026-11-21",
    "regime_families": ["cnss"],
    "key_letters": {
        "C": {"value": "120.00", "category": "ambulatory", "specialties": ["394814009"]}
    },
    "flat_rates": {},
    "excluded": {},
}


def tariffs(*args: str, published: Path) -> subprocess.CompletedProcess[str]:
    """``fse tariffs import …`` as a CNSS operator runs it (no database needed)."""
    unused = published.parent / "unused.sqlite3"
    return fse("tariffs", "import", *args, database=unused, FSE_REFERENCE_DATA_DIR=str(published))


def test_a_dry_run_reports_the_changes_and_publishes_nothing(tmp_path: Path) -> None:
    version = tmp_path / "c120.json"
    version.write_text(json.dumps(C_AT_120), encoding="utf-8")
    published = tmp_path / "published"
    dry = tariffs(str(version), "--dry-run", published=published)
    assert dry.returncode == 0, dry.stderr
    assert "tnr tnr-cnss-2026-11-essai: 1 rows, in force from 2026-11-21" in dry.stdout
    assert "~ C (cnss) 80.00 -> 120.00" in dry.stdout
    assert "nothing published" in dry.stdout and not published.exists()
    done = tariffs(str(version), published=published)
    assert (
        done.returncode == 0
        and (published / "tnr" / "2026-11-21-tnr-cnss-2026-11-essai.json").exists()
    )
    again = tariffs(str(version), published=published)
    assert again.returncode == 1 and "already published: choose a new id" in again.stderr


def test_a_medicines_list_is_compared_row_by_row(tmp_path: Path) -> None:
    current = json.loads(next((DATA / "medicines").glob("*.json")).read_text(encoding="utf-8"))
    rows = [dict(row) for row in current["medicines"]]
    zovirax = next(row for row in rows if row["ean"] == "6118001141531")
    zovirax["pbr"] = "199.00"  # a cheaper generic appeared
    rows.pop()  # one product delisted
    rows.append({**zovirax, "ean": "6118001709991", "name": "NOUVEAU-GEN"})
    newer = {**current, "id": "medicaments-2027", "valid_from": "2027-01-01", "medicines": rows}
    path = tmp_path / "medicaments-2027.json"
    path.write_text(json.dumps(newer), encoding="utf-8")
    dry = tariffs(str(path), "--dry-run", published=tmp_path / "published")
    assert dry.returncode == 0, dry.stderr
    assert "1 new, 1 changed, 1 no longer listed, 5915 unchanged" in dry.stdout
    assert "6118001141531 ZOVIRAX: PPV 232.00 -> 232.00, PBR 209.00 -> 199.00" in dry.stdout
    bad = {**newer, "id": "x", "medicines": [{**rows[0], "ppv": "douze"}]}
    path.write_text(json.dumps(bad), encoding="utf-8")
    refused = tariffs(str(path), "--dry-run", published=tmp_path / "published")
    assert refused.returncode == 1 and "malformed row" in refused.stderr


def test_the_cnops_list_is_imported_from_its_published_csv(tmp_path: Path) -> None:
    """The loader that made the shipped list reads the CSV as published: the same list again
    changes nothing; without a date it is refused, saying what to give."""
    source = DATA / "sources" / "cnops_referentiel_medicaments_2014.csv"
    published = tmp_path / "published"
    undated = tariffs(str(source), "--dry-run", published=published)
    assert undated.returncode == 1 and "give --valid-from AAAA-MM-JJ" in undated.stderr
    again = tariffs(str(source), "--valid-from", "2014-06-23", "--dry-run", published=published)
    assert again.returncode == 0, again.stderr
    assert "medicines cnops-20140623: 5917 rows, in force from 2014-06-23" in again.stdout
    assert "0 new, 0 changed, 0 no longer listed, 5917 unchanged" in again.stdout
    assert "rows checked: 5,917/5,917" in again.stderr  # progress while it reads
    done = tariffs(
        str(source), "--valid-from", "2027-01-01", "--id", "cnops-2027", published=published
    )
    assert done.returncode == 0, done.stderr
    target = published / "medicines" / "2027-01-01-cnops-2027.json"
    assert json.loads(target.read_text(encoding="utf-8"))["attribution"].startswith("Contient")
    broken = tmp_path / "broken.csv"
    broken.write_bytes(source.read_bytes().replace(b"6118001141531", b"61180011415", 1))
    refused = tariffs(str(broken), "--valid-from", "2027-01-01", published=published)
    assert (
        refused.returncode == 1 and "CODE '61180011415' is not a 13-digit EAN-13" in refused.stderr
    )


async def test_servers_price_care_from_the_new_date_once_published(
    platform: Platform, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = await load_demo(client)
    settlement = platform.app.state.settlement
    kept = settlement.books
    monkeypatch.setattr(feature, "RELOAD_SECONDS", 0.05)
    watcher = asyncio.create_task(feature.reload_published_books(platform.app, platform.settings))
    await asyncio.sleep(0.1)  # the server is running before the version is published
    version = platform.settings.reference_data_dir.parent / "incoming.json"
    version.write_text(json.dumps(C_AT_120), encoding="utf-8")
    try:
        assert tariffs(str(version), published=platform.settings.reference_data_dir).returncode == 0
        for _ in range(100):
            if settlement.books is not kept:
                break
            await asyncio.sleep(0.05)
        assert settlement.books.tariffs.key_letter("C", "cnss", date(2026, 11, 21)).value == 120
        before = await client.post(
            SUBMIT, json=claim(refs, FATIMA, [act("C", "150.00", "2026-11-20")])
        )
        after = await client.post(
            SUBMIT, json=claim(refs, FATIMA, [act("C", "150.00", "2026-11-21")])
        )
        assert adjudication(before.json(), 0, "benefit") == 56.0  # 70 % of the 2006 C (80)
        assert adjudication(after.json(), 0, "benefit") == 84.0  # 70 % of the new C (120)
    finally:
        watcher.cancel()
        settlement.books = kept
        for published in platform.settings.reference_data_dir.rglob("*.json"):
            published.unlink()


def parameters(version: dict, dry_run: bool = False) -> dict:
    data = base64.b64encode(json.dumps(version).encode()).decode()
    return {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "version",
                "valueAttachment": {"contentType": "application/json", "data": data},
            },
            {"name": "dryRun", "valueBoolean": dry_run},
        ],
    }


def answered(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return {
        p["name"]: next(v for k, v in p.items() if k.startswith("value"))
        for p in response.json()["parameter"]
    }


async def test_cnss_systems_publish_a_tariff_version_through_fhir(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    settlement = platform.app.state.settlement
    kept = settlement.books
    url = "/fhir/CodeSystem/$publish-tariffs"
    try:
        dry = answered(await client.post(url, json=parameters(C_AT_120, dry_run=True)))
        assert (dry["kind"], dry["validFrom"], dry["changed"], dry["published"]) == (
            "tnr",
            "2026-11-21",
            1,
            False,
        )
        assert "C (cnss) 80.00 -> 120.00" in dry["report"]
        assert list(platform.settings.reference_data_dir.rglob("*.json")) == []
        assert settlement.books is kept

        done = answered(await client.post(url, json=parameters(C_AT_120)))
        assert done["published"] is True
        after = await client.post(
            SUBMIT, json=claim(refs, FATIMA, [act("C", "150.00", "2026-11-21")])
        )
        assert adjudication(after.json(), 0, "benefit") == 84.0  # this server, at once
        log = (await client.get("/fhir/AuditEvent", params={"action": "C"})).json()
        (event,) = [e["resource"] for e in log["entry"]]
        assert (
            "tnr-cnss-2026-11-essai publiée, en vigueur à partir du 21/11/2026"
            in (event["outcomeDesc"])
        )

        again = await client.post(url, json=parameters(C_AT_120))  # the same id twice
        assert again.status_code == 422
        (issue,) = again.json()["issue"]
        assert issue["details"]["coding"][0]["code"] == "FSE-0030"
        assert "already published" in issue["diagnostics"]
        missing = await client.post(url, json={"resourceType": "Parameters"})
        assert missing.status_code == 400
        reader = await platform.token_with("system/CodeSystem.rs")
        denied = await client.post(
            url, json=parameters(C_AT_120), headers={"Authorization": f"Bearer {reader}"}
        )
        assert denied.status_code == 403
    finally:
        settlement.books = kept
        for published in platform.settings.reference_data_dir.rglob("*.json"):
            published.unlink()
