"""The body of a rest-hook notification: an R4B ``history`` Bundle whose first entry is a
SubscriptionStatus naming the event (number, time, focus), as the Subscriptions backport does.
The focus resource itself is added only when the subscription asked for a payload and its
client may read that type; otherwise the receiver reads it through the API."""

from __future__ import annotations

from typing import Any

from fhir_profiles.systems import SUBSCRIPTION_TOPIC_BASE


def notification(
    base: str,
    subscription_id: str,
    event: dict[str, Any],
    event_number: int,
    resource: dict[str, Any] | None,
) -> dict[str, Any]:
    focus = event["subject"]
    status = {
        "resourceType": "SubscriptionStatus",
        "status": "active",
        "type": "event-notification",
        "eventsSinceSubscriptionStart": str(event_number),
        "notificationEvent": [
            {
                "eventNumber": str(event_number),
                "timestamp": event["occurredAt"],
                "focus": {"reference": focus},
            }
        ],
        "subscription": {"reference": f"{base}/Subscription/{subscription_id}"},
        "topic": SUBSCRIPTION_TOPIC_BASE + event["kind"],
    }
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{event['eventId']}",
            "resource": status,
            "request": {"method": "GET", "url": f"Subscription/{subscription_id}/$status"},
            "response": {"status": "200"},
        }
    ]
    if resource is not None:
        entries.append(
            {
                "fullUrl": f"{base}/{focus}",
                "resource": resource,
                "request": {"method": "PUT", "url": focus},
                "response": {"status": "200"},
            }
        )
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{event['eventId']}"},
        "type": "history",
        "timestamp": event["occurredAt"],
        "entry": entries,
    }
