"""FHIR subscription notification payloads for tests: an R4 Subscriptions Backport Bundle (a
Parameters status first, per HL7/fhir-subscription-backport-ig input/fsh/BackportNotificationR4.fsh)
and its full-resource entries."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from carecoord.fhir.errors import FhirNotFound
from carecoord.fhir.models import parse_resource, to_json
from carecoord.handlers.referrals.builders import referral_task

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


def task_json(status: str = "rejected", version: str = "3", **extra: Any) -> dict[str, Any]:
    task = referral_task(
        key="sr-1:1",
        patient="Patient/p1",
        domain="food-insecurity",
        service_request="ServiceRequest/sr-1",
        owner="Organization/pantry",
        requester="PractitionerRole/cm-1",
        authored_on=datetime(2025, 3, 1, tzinfo=UTC),
    )
    data = to_json(task)
    data.update(id="t1", status=status, meta={"versionId": version})
    data["lastModified"] = "2025-03-10T15:00:00+00:00"
    if status == "rejected":
        data["statusReason"] = {"text": "waiting list full"}
    data.update(extra)
    return data


class Reader:
    """A FhirReader over fixed resources that records its reads."""

    def __init__(self, *resources: dict[str, Any]) -> None:
        self.resources = {(r["resourceType"], r["id"]): r for r in resources}
        self.reads: list[tuple[str, str]] = []

    def read(self, resource_type: str, resource_id: str) -> Any:
        self.reads.append((resource_type, resource_id))
        if (resource_type, resource_id) not in self.resources:
            raise FhirNotFound("not found", status=404)
        return parse_resource(copy.deepcopy(self.resources[(resource_type, resource_id)]))

    def search(self, resource_type: str, params: Any) -> list[Any]:
        raise AssertionError("translate never searches")


class Publisher:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.published: list[Any] = []

    def __call__(self, events: Any) -> None:
        if self.fail:
            raise RuntimeError("broker unreachable")
        self.published.extend(events)
