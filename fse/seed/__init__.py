"""Data loading: the AMO guide's definitions and the demo data, as transaction Bundles of
conditional creates, so loading twice changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from fhir_profiles.guide import definitions
from fhir_profiles.systems import INPE_SYSTEM
from fse.accounts import create_account
from fse.config import Settings
from fse.fhir_api.interactions import standalone_service
from fse.fhir_api.transaction import BundleProcessor
from fse.security.users import Role, find_user
from fse.store.query import parse_search
from fse.store.repository import ResourceStore

DEMO_BUNDLE = Path(__file__).parent / "demo-bundle.json"
DEMO_ACCOUNTS = Path(__file__).parent / "demo-accounts.json"


def guide_bundle() -> dict[str, Any]:
    """Every definition of the guide, created unless one with the same canonical exists."""
    entries = []
    for resource in definitions():
        if resource["resourceType"] == "NamingSystem":
            preferred = next(u["value"] for u in resource["uniqueId"] if u.get("preferred"))
            criteria = f"value:exact={preferred}"
        else:
            criteria = f"url={resource['url']}" + (
                f"&version={resource['version']}" if "version" in resource else ""
            )
        body = {k: v for k, v in resource.items() if k != "id"}
        entries.append(
            {
                "resource": body,
                "request": {
                    "method": "POST",
                    "url": resource["resourceType"],
                    "ifNoneExist": criteria,
                },
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def demo_bundle() -> dict[str, Any]:
    return json.loads(DEMO_BUNDLE.read_text(encoding="utf-8"))


async def load(settings: Settings, bundle: dict[str, Any]) -> tuple[int, int]:
    """Run one transaction Bundle; returns (created, already present)."""
    async with standalone_service(settings) as service:
        processor = BundleProcessor(service, "urn:fse:seed")
        _, entries = processor.entries(bundle)
        body, written = await processor.transaction(entries)
    statuses = [e["response"]["status"] for e in orjson.loads(body)["entry"]]
    return len(written), statuses.count("200 OK")


async def load_demo_accounts(settings: Settings) -> tuple[int, int]:
    """The demo users (public demo password), linked to their Practitioner by INPE, whose
    public signing key is then published on it."""
    accounts = json.loads(DEMO_ACCOUNTS.read_text(encoding="utf-8"))
    created = existing = 0
    async with standalone_service(settings) as service:
        for account in accounts["users"]:
            if await find_user(service.store.engine, account["username"]) is not None:
                existing += 1
                continue
            practitioner = None
            if "inpe" in account:
                practitioner = await _practitioner_by_inpe(service.store, account["inpe"])
            await create_account(
                service,
                account["username"],
                accounts["password"],
                Role(account["role"]),
                account["display_name"],
                practitioner,
            )
            created += 1
    return created, existing


async def _practitioner_by_inpe(store: ResourceStore, inpe: str) -> str | None:
    query = parse_search(
        "Practitioner", [("identifier", f"{INPE_SYSTEM}|{inpe}")], default_count=1, max_count=1
    )
    async with store.snapshot() as conn:
        page = await store.search(conn, query)
    return f"Practitioner/{page.matches[0].id}" if page.matches else None
