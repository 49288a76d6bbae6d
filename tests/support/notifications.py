"""FHIR subscription notification payloads for tests: an R4 Subscriptions Backport Bundle (a
Parameters status first, per HL7/fhir-subscription-backport-ig input/fsh/BackportNotificationR4.fsh)
and its full-resource entries."""

from __future__ import annotations

from typing import Any

BASE = "http://fhir.example.org/fhir"


def backport_bundle(*entries: dict[str, Any], kind: str = "event-notification") -> dict[str, Any]:
    """An R4 Subscriptions Backport notification: a Parameters status, then the entries."""
    status = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/s1"}},
            {"name": "topic", "valueCanonical": "http://example.org/topic/task-changes"},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": kind},
            {"name": "events-since-subscription-start", "valueString": "7"},
        ],
    }
    return {
        "resourceType": "Bundle",
        "type": "history",
        "timestamp": "2025-03-10T15:00:01Z",
        "entry": [
            {
                "fullUrl": "urn:uuid:5a2b9e7c-0000-4000-8000-000000000001",
                "resource": status,
                "request": {"method": "GET", "url": f"{BASE}/Subscription/s1/$status"},
                "response": {"status": "200"},
            },
            *entries,
        ],
    }


def full_entry(resource: dict[str, Any]) -> dict[str, Any]:
    ref = f"{resource['resourceType']}/{resource['id']}"
    return {
        "fullUrl": f"{BASE}/{ref}",
        "resource": resource,
        "request": {"method": "PUT", "url": ref},
        "response": {"status": "200"},
    }
