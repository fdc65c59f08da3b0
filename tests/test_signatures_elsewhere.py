"""A stranger can check what the platform and its professionals sign (issue 17): a doctor's
care sheet, a pharmacist's dispense, the platform's receipt and an access token verify with
only what the platform publishes over HTTP (the JWKS, the resources, the signers'
Practitioners) and another JOSE implementation that shares no code with ours: joserfc and
rfc8785 in a Python that cannot import the project, and the npm ``jose`` package run by Node.
The rules they follow are docs/security.md's ("Signatures a stranger can check")."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from importlib.metadata import Distribution, distribution
from pathlib import Path
from typing import Any

import httpx
from packaging.requirements import Requirement
from sqlalchemy import select

from fse.security.clients import create_client
from pharmacy.tables import dispensations
from tests.conftest import Platform
from tests.pharmacy.helpers import CICLOVIRAL, counter, fatima_sheet, line, order

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "stranger"
NODE_JOSE = "jose@6.2.19"
"""The npm package the Node check installs (exact version: the test does not change under us)."""
NODE_DIR = ROOT / "var" / "node"
"""Where npm installs it (``var/`` is not versioned)."""
KID = r"kid [\w-]{43}\)"
"""A 43-character base64url kid: a SHA-256 thumbprint (the scripts check it is RFC 7638's)."""
SIGNED_LINES = [
    r"doctor's care sheet: signature valid \(\d+ resources, " + KID,
    r"pharmacist's dispense: signature valid \(\d+ resources, " + KID,
    r"receipt: signature valid \(" + KID,
    r"access token: valid for fse-\w+ \(" + KID,
]


async def published(platform: Platform, client: httpx.AsyncClient) -> dict[str, Any]:
    """What a stranger gets over HTTP after a doctor signed a sheet and a pharmacist dispensed
    it: texts as served, for the stranger's own JSON parser to read."""
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    found = await desk.lines(sheet.number)
    zovirax, ciclo = line(found, "ZOVIRAX"), line(found, "CICLOVIRAL")
    done = await desk.dispense(
        zovirax.patient_id,
        order(zovirax, 1, CICLOVIRAL, "209.00"),
        order(ciclo, 1, price="209.00"),
        tiers_payant=True,
    )
    async with platform.engine.connect() as conn:
        row = (
            await conn.execute(select(dispensations).where(dispensations.c.number == done.number))
        ).one()
    assert sheet.provenance_id is not None

    async def text(path: str) -> str:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text)
        return response.text

    async def provenance(provenance_id: str) -> dict[str, Any]:
        served = await text(f"/fhir/Provenance/{provenance_id}")
        resource = json.loads(served)
        targets = [await text(f"/fhir/{t['reference']}") for t in resource["target"]]
        signer = resource["signature"][0]["who"]["reference"]
        return {"provenance": served, "targets": targets, "signer": await text(f"/fhir/{signer}")}

    system, secret = await create_client(
        platform.engine, f"stranger-{uuid.uuid4().hex[:8]}", "system/Patient.rs"
    )
    token = await client.post(
        "/auth/token", data={"grant_type": "client_credentials"}, auth=(system.client_id, secret)
    )
    assert token.status_code == 200, token.text
    return {
        "jwks": await text("/.well-known/jwks.json"),
        "provenances": {
            "doctor's care sheet": await provenance(sheet.provenance_id),
            "pharmacist's dispense": await provenance(row.provenance_id),
        },
        "receipt": {"content": row.receipt, "jws": row.receipt_jws},
        "token": token.json()["access_token"],
        "audience": platform.settings.token_audience,
    }


def _closure(names: list[str]) -> list[Distribution]:
    """The installed distributions ``names`` need to run (their requirements, markers applied)."""
    found: dict[str, Distribution] = {}
    todo = list(names)
    while todo:
        dist = distribution(todo.pop())
        name = dist.metadata["Name"].lower()
        if name in found:
            continue
        found[name] = dist
        for requirement in map(Requirement, dist.requires or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(found.values())


def stranger_site(where: Path) -> Path:
    """A folder holding joserfc, rfc8785 and their dependencies, and nothing else."""
    site = where / "site"
    site.mkdir()
    for dist in _closure(["joserfc", "rfc8785"]):
        tops = {
            file.parts[0]
            for file in dist.files or []
            if file.parts[0] != ".." and not file.parts[0].endswith((".dist-info", ".data"))
        }
        for top in tops:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    return site


def node_with_jose() -> Path:
    """``var/node`` with the npm ``jose`` package, installed from the registry on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "this test runs the npm `jose` package: install Node.js 20+ and npm"
    installed = NODE_DIR / "node_modules" / "jose" / "package.json"
    wanted = NODE_JOSE.rsplit("@", 1)[1]
    if not installed.exists() or json.loads(installed.read_text())["version"] != wanted:
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", NODE_JOSE],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0 and installed.exists(), (
            f"npm could not install {NODE_JOSE} into {NODE_DIR} (is the npm registry "
            f"reachable?): {done.stderr[-2000:]}"
        )
    return NODE_DIR


def assert_every_signature_checked(stdout: str) -> None:
    for pattern in SIGNED_LINES:
        assert re.search(pattern, stdout), f"{pattern} not in:\n{stdout}"


async def test_python_without_the_project_verifies_with_joserfc(
    platform: Platform, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    data = tmp_path / "published.json"
    data.write_text(json.dumps(await published(platform, client)), encoding="utf-8")
    site = stranger_site(tmp_path)
    assert {p.name for p in site.iterdir()} >= {"joserfc", "rfc8785", "cryptography"}
    assert not {"fse", "pharmacy", "prescriber", "orjson"} & {p.name for p in site.iterdir()}
    script = SCRIPTS / "verify_signatures.py"
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(site), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert_every_signature_checked(done.stdout)


async def test_node_verifies_with_the_npm_jose_package(
    platform: Platform, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    where = node_with_jose()
    data = tmp_path / "published.json"
    data.write_text(json.dumps(await published(platform, client)), encoding="utf-8")
    script = where / "verify_signatures.mjs"  # beside node_modules, where `import "jose"` looks
    shutil.copyfile(SCRIPTS / "verify_signatures.mjs", script)
    done = subprocess.run(
        ["node", str(script), str(data)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert_every_signature_checked(done.stdout)
