"""FHIR subscription notifications -> the resources they name (carecoord.fhir.notification_bundles):
which shapes are accepted, what is taken from them (identity only), and how a payload that is not
a notification is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from carecoord.errors import MalformedEvent
from carecoord.fhir.errors import FhirGone, FhirServerError
from carecoord.fhir.models import parse_resource
from carecoord.fhir.notification_bundles import (
    Hint,
    MalformedNotification,
    notified_resources,
    parse_reference,
    read_current,
)
from support.notifications import BASE, backport_bundle, full_entry

SECRET = "Patient told us she sleeps in her car"  # stands in for PHI: never in an error


def encounter(status: str = "in-progress") -> dict[str, Any]:
    return {"resourceType": "Encounter", "id": "e1", "status": status, "class": {"code": "AMB"}}


def with_focus(bundle: dict[str, Any], *references: str) -> dict[str, Any]:
    events = [
        {
            "name": "notification-event",
            "part": [
                {"name": "event-number", "valueString": str(n)},
                {"name": "focus", "valueReference": {"reference": ref}},
            ],
        }
        for n, ref in enumerate(references, start=1)
    ]
    bundle["entry"][0]["resource"]["parameter"] += events
    return bundle


# ---------------------------------------------------------------------------------------------
# What a notification names


def test_full_resource_id_only_and_delete_entries_name_their_resources_in_order() -> None:
    bundle = backport_bundle(
        full_entry(encounter() | {"note": SECRET}),
        {"fullUrl": f"{BASE}/Task/t1/_history/4", "request": {"method": "PUT", "url": "Task/t1"}},
        {"request": {"method": "POST", "url": "Observation/o1"}},
        {"fullUrl": f"{BASE}/Task/t2", "request": {"method": "DELETE", "url": "Task/t2"}},
    )
    assert notified_resources(bundle) == [
        Hint("Encounter", "e1"),
        Hint("Task", "t1"),
        Hint("Observation", "o1"),
    ]


def test_without_entries_the_r4_backport_focus_names_the_resources() -> None:
    bundle = with_focus(backport_bundle(), f"{BASE}/Task/t1", "Task/t2/_history/3")
    assert [h.reference for h in notified_resources(bundle)] == ["Task/t1", "Task/t2"]


def test_the_focus_is_not_added_when_entries_name_the_resources() -> None:
    bundle = with_focus(backport_bundle(full_entry(encounter())), "Task/t9")
    assert notified_resources(bundle) == [Hint("Encounter", "e1")]


def test_an_r4b_or_r5_subscription_status_bundle_is_accepted() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "subscription-notification",
        "entry": [
            {
                "resource": {
                    "resourceType": "SubscriptionStatus",
                    "status": "active",
                    "type": "event-notification",
                    "notificationEvent": [{"eventNumber": "8", "focus": {"reference": "Task/t1"}}],
                }
            }
        ],
    }
    assert notified_resources(bundle) == [Hint("Task", "t1")]
    bundle["entry"].append(full_entry(encounter()))
    assert notified_resources(bundle) == [Hint("Encounter", "e1")]


@pytest.mark.parametrize("kind", ["heartbeat", "handshake", "query-status"])
def test_heartbeats_handshakes_and_status_queries_name_nothing(kind: str) -> None:
    assert notified_resources(with_focus(backport_bundle(kind=kind), "Task/t1")) == []


def test_feed_items_name_their_resource_or_location_and_skip_deletes() -> None:
    items = [
        {"operationType": "update", "location": "X/1", "resource": encounter()},
        {"operationType": "update", "location": f"{BASE}/Task/t1/_history/6"},
        {"operationType": "delete", "location": "Task/t1/_history/7"},
    ]
    assert notified_resources(items) == [Hint("Encounter", "e1"), Hint("Task", "t1")]
    assert notified_resources(items[1]) == [Hint("Task", "t1")]


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("Task/t1", ("Task", "t1", None)),
        (f"{BASE}/Task/t1/_history/4", ("Task", "t1", "4")),
        ("https://wrong.host.example/any/prefix/Task/t1/", ("Task", "t1", None)),
        ("Task/t1?_format=json#frag", ("Task", "t1", None)),
        ("urn:uuid:5a2b9e7c-0000-4000-8000-000000000001", None),
        ("task/t1", None),
        ("Task/" + "x" * 65, None),
    ],
)
def test_references_are_read_from_the_end_of_a_url(
    url: str, parsed: tuple[str, str, str | None] | None
) -> None:
    assert parse_reference(url) == parsed


# ---------------------------------------------------------------------------------------------
# The server's copy


class Server:
    def __init__(self, *resources: dict[str, Any], error: Exception | None = None) -> None:
        self.resources = {(r["resourceType"], r["id"]): r for r in resources}
        self.error = error

    def read(self, resource_type: str, resource_id: str) -> Any:
        if self.error is not None:
            raise self.error
        if (resource_type, resource_id) not in self.resources:
            raise FhirGone("deleted", status=410)
        return parse_resource(copy.deepcopy(self.resources[(resource_type, resource_id)]))

    def search(self, resource_type: str, params: Any) -> list[Any]:
        raise AssertionError("never searched")


def test_a_bare_resource_criteria_notification_names_only_its_identity() -> None:
    # R4 criteria-based rest-hook with channel.payload set (and Medplum): the resource itself
    assert notified_resources({"resourceType": "Task", "id": "t9", "note": SECRET}) == [
        Hint("Task", "t9")
    ]


def test_the_current_version_is_read_from_the_server_not_taken_from_the_notification() -> None:
    (hint,) = notified_resources(backport_bundle(full_entry(encounter("planned"))))
    served = encounter("finished") | {"meta": {"versionId": "7"}}
    changed = read_current(hint, Server(served))
    assert changed is not None
    assert (changed.reference, changed.version, changed.resource["status"]) == (
        "Encounter/e1",
        "7",
        "finished",
    )
    assert read_current(hint, Server()) is None  # deleted since
    with pytest.raises(FhirServerError):
        read_current(hint, Server(error=FhirServerError("unavailable", status=503)))


# ---------------------------------------------------------------------------------------------
# What is not a notification


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("just text", "not a FHIR notification"),
        ({"note": SECRET}, "not a FHIR notification"),
        ({"resourceType": "Patient", "id": f"{SECRET}!", "note": SECRET}, "no valid id"),
        ({**backport_bundle(), "type": "searchset"}, "Bundle.type"),
        ({"resourceType": "Bundle", "type": "history", "entry": []}, "no entry"),
        (
            {"resourceType": "Bundle", "type": "history", "entry": [full_entry(encounter())]},
            "first entry",
        ),
        (backport_bundle(kind=SECRET), "no known type"),
        (backport_bundle("not an entry"), "is not an object"),
        (backport_bundle({"request": {"method": "PUT"}}), "neither a resource"),
        (backport_bundle({"fullUrl": f"urn:uuid:{SECRET}"}), "not a Type/id reference"),
        (backport_bundle(full_entry(encounter()) | {"resource": SECRET}), "not an object"),
        (backport_bundle({"resource": {"resourceType": SECRET, "id": "x1"}}), "resourceType"),
        (backport_bundle({"resource": {"resourceType": "Task", "id": SECRET}}), "no valid id"),
        (with_focus(backport_bundle(), f"{BASE}/{SECRET}"), "focus"),
        ({"operationType": "update", "resource": encounter()}, "no location"),
        ([{"location": "Task/t1", "note": SECRET}], "no operationType"),
        ([SECRET], "not an object"),
    ],
)
def test_a_payload_that_is_not_a_notification_says_what_is_wrong_without_echoing_values(
    payload: Any, message: str
) -> None:
    with pytest.raises(MalformedNotification, match=message) as raised:
        notified_resources(payload)
    assert SECRET not in str(raised.value)
    assert isinstance(raised.value, MalformedEvent)  # refused like any malformed event


@pytest.mark.parametrize("url", ["Task/t1\n", "Task/t1\n/_history/2", "Task/t 1"])
def test_a_reference_with_whitespace_names_no_resource(url: str) -> None:
    """`$` matches before a final newline: the id pattern must hold to the very end, or a Task
    id 't1\\n' reaches a request URL (InvalidURL, a 500 the server then retries)."""
    assert parse_reference(url) is None
    assert parse_reference(url.replace("\n", "").replace(" ", "")) is not None
