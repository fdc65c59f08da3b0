"""Demo data: a transaction Bundle of conditional creates, so seeding twice changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from fse.config import Settings
from fse.db import create_engine
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.transaction import BundleProcessor
from fse.runtime import build_runtime
from fse.store.repository import ResourceStore

DEMO_BUNDLE = Path(__file__).parent / "demo-bundle.json"


async def load_demo(settings: Settings) -> tuple[int, int]:
    """Load the demo Bundle; returns (created, already present)."""
    engine = create_engine(settings.database_url)
    runtime = build_runtime(None)
    try:
        service = FhirService(ResourceStore(engine), runtime, settings)
        bundle = json.loads(DEMO_BUNDLE.read_text(encoding="utf-8"))
        processor = BundleProcessor(service, "urn:fse:seed")
        _, entries = processor.entries(bundle)
        body, written = await processor.transaction(entries)
        statuses = [e["response"]["status"] for e in orjson.loads(body)["entry"]]
        return len(written), statuses.count("200 OK")
    finally:
        await runtime.close()
        await engine.dispose()
