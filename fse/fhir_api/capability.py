"""The CapabilityStatement, generated from what is actually wired (types, params, operations)."""

from __future__ import annotations

from typing import Any

from fse.fhir_api.operations import OperationRegistry
from fse.security.access import INTERACTION_LETTER, RESERVED
from fse.store.search_params import SEARCH_PARAMS, UNIQUE_IDENTIFIER_TYPES

INTERACTIONS = (
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
COMMON_PARAMS = (
    {"name": "_id", "type": "token"},
    {"name": "_lastUpdated", "type": "date"},
)


WRITES = ("create", "update", "delete")
BULK_DATA = "http://hl7.org/fhir/uv/bulkdata"
EXPORT = {"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/export"}
PATIENT_EXPORT = {"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/patient-export"}
"""Bulk Data $export (fse.export.routes): GET with Prefer: respond-async, not a registry op."""


def _resource_entry(rtype: str, operations: OperationRegistry) -> dict[str, Any]:
    params = SEARCH_PARAMS[rtype]
    letters, how = RESERVED.get(rtype, ("", ""))
    interactions = [c for c in INTERACTIONS if INTERACTION_LETTER[c] not in letters]
    entry: dict[str, Any] = {
        "type": rtype,
        "interaction": [{"code": code} for code in interactions],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": True,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchInclude": [f"{rtype}:{p.name}" for p in params if p.type == "reference"],
        "searchRevInclude": sorted(
            f"{other}:{p.name}"
            for other, other_params in SEARCH_PARAMS.items()
            for p in other_params
            if p.type == "reference" and rtype in p.targets
        ),
        "searchParam": [
            *COMMON_PARAMS,
            *({"name": p.name, "type": p.type} for p in params),
        ],
    }
    ops = [{"name": op.name, "definition": op.definition} for op in operations.for_type(rtype)]
    if rtype == "Patient":
        ops.insert(0, PATIENT_EXPORT)
    if ops:
        entry["operation"] = ops
    notes = []
    if rtype in UNIQUE_IDENTIFIER_TYPES:
        notes.append("identifier (system|value) is unique among live resources")
    if letters:
        refused = "/".join(c for c in WRITES if INTERACTION_LETTER[c] in letters)
        notes.append(f"no REST {refused}: {how}")
    if notes:
        entry["documentation"] = "; ".join(notes)
    return entry


def _subscription_entry(subscribable: str) -> dict[str, Any]:
    return {
        "type": "Subscription",
        "interaction": [
            {"code": code} for code in ("read", "update", "delete", "create", "search-type")
        ],
        "versioning": "versioned-update",
        "updateCreate": False,
        "operation": [
            {
                "name": "status",
                "definition": "http://hl7.org/fhir/OperationDefinition/Subscription-status",
            }
        ],
        "documentation": (
            "rest-hook only; each client sees its own subscriptions. Criteria: "
            f"{subscribable}. Notifications are history Bundles (SubscriptionStatus first, "
            "Bundle.identifier = event id); the focus resource is included only with "
            "channel.payload application/fhir+json and read scope on its type."
        ),
    }


def capability_statement(
    base: str,
    operations: OperationRegistry,
    software_version: str,
    max_count: int,
    subscribable: str = "",
) -> dict[str, Any]:
    """FHIR R4 CapabilityStatement listing exactly the types, interactions and parameters wired."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "publisher": "CNSS - plateforme FSE",
        "kind": "instance",
        "software": {"name": "fse-platform", "version": software_version},
        "implementation": {"description": "AMO electronic care sheet platform", "url": base},
        "instantiates": [f"{BULK_DATA}/CapabilityStatement/bulk-data"],
        "fhirVersion": "4.3.0",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": f"Search pages hold at most {max_count} entries (_count).",
                "resource": [
                    *(_resource_entry(t, operations) for t in SEARCH_PARAMS),
                    _subscription_entry(subscribable),
                ],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "operation": [EXPORT],
            }
        ],
    }
