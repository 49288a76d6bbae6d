"""carecoord.fhir.subscriptions without a server: the two Subscription shapes (R4 Backport STU
1.1's backport-subscription profile, R4 criteria-based with Medplum's secret), the topics and
`$events` a CapabilityStatement offers, criteria cut to the declared search parameters, status
Parameters read in both spellings, and `ensure` against a recording fake."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from carecoord.fhir.subscriptions import (
    Channel,
    SubscriptionManager,
    SubscriptionSpec,
    declared_criteria,
    notification_status,
    offered_topics,
    offers_events,
    subscription_resource,
)

SD = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
TAG = "https://carecoord.dev/fhir/CodeSystem/subscription"
SPEC = SubscriptionSpec(
    key="referral-tasks",
    reason="referrals",
    criteria="Task?code=http://hl7.org/fhir/CodeSystem/task-code|fulfill",
    topic="https://example.org/topic/task",
    topic_filter="Task?code=http://hl7.org/fhir/CodeSystem/task-code|fulfill",
)
CHANNEL = Channel(
    endpoint="https://cc.example.org/fhir/notifications",
    headers=("Authorization: Bearer t",),
    heartbeat_period=300,
    secret="medplum",
)


def statement(*, topics: Sequence[str] = (), events: bool = False) -> dict[str, Any]:
    sub: dict[str, Any] = {
        "type": "Subscription",
        "extension": [
            {"url": f"{SD}/capabilitystatement-subscriptiontopic-canonical", "valueCanonical": t}
            for t in topics
        ],
        "operation": [{"name": "status", "definition": "x"}],
    }
    if events:
        sub["operation"].append({"name": "events", "definition": "y"})
    task = {"type": "Task", "searchParam": [{"name": "code", "type": "token"}]}
    return {"resourceType": "CapabilityStatement", "rest": [{"resource": [sub, task]}]}


def test_the_topic_shape_follows_the_backport_profile() -> None:
    sub = subscription_resource(SPEC, CHANNEL, shape="topic", tag_system=TAG)
    assert sub["meta"] == {
        "tag": [{"system": TAG, "code": "referral-tasks"}],
        "profile": [f"{SD}/backport-subscription"],
    }
    assert sub["criteria"] == "https://example.org/topic/task"
    assert sub["_criteria"]["extension"] == [
        {"url": f"{SD}/backport-filter-criteria", "valueString": SPEC.topic_filter}
    ]
    channel = sub["channel"]
    assert channel["type"] == "rest-hook" and channel["payload"] == "application/fhir+json"
    assert channel["_payload"]["extension"] == [
        {"url": f"{SD}/backport-payload-content", "valueCode": "id-only"}
    ]
    assert channel["extension"] == [
        {"url": f"{SD}/backport-heartbeat-period", "valueUnsignedInt": 300}
    ]
    assert channel["header"] == ["Authorization: Bearer t"]
    assert "extension" not in sub  # Medplum's secret is for criteria-based ones


def test_the_criteria_shape_carries_the_search_and_medplums_secret() -> None:
    sub = subscription_resource(SPEC, CHANNEL, shape="criteria", tag_system=TAG)
    assert sub["criteria"] == SPEC.criteria
    assert "_criteria" not in sub and "profile" not in sub["meta"]
    assert sub["extension"] == [
        {
            "url": "https://www.medplum.com/fhir/StructureDefinition/subscription-secret",
            "valueString": "medplum",
        }
    ]
    assert "extension" not in sub["channel"]


def test_topics_and_events_are_read_from_the_capability_statement() -> None:
    offered = statement(topics=["https://example.org/topic/task"], events=True)
    assert offered_topics(offered) == {"https://example.org/topic/task"}
    assert offers_events(offered)
    assert offered_topics(statement()) == frozenset() and not offers_events(statement())
    assert offered_topics(None) == frozenset()


def test_criteria_keep_only_the_parameters_the_server_declares() -> None:
    declared = statement()
    assert declared_criteria("Task?code=a|b&owner=Organization/1", declared) == "Task?code=a|b"
    assert declared_criteria("QuestionnaireResponse?status=completed", declared) == (
        "QuestionnaireResponse"
    )
    assert declared_criteria("Task?owner=x", None) == "Task?owner=x"  # capabilities unknown


def test_status_parameters_are_read_in_either_spelling() -> None:
    kebab = {"resourceType": "Parameters", "parameter": [
        {"name": "subscription", "valueReference": {"reference": "https://f.example/Subscription/s9"}},
        {"name": "status", "valueCode": "error"},
        {"name": "type", "valueCode": "event-notification"},
        {"name": "events-since-subscription-start", "valueString": "12"},
        {"name": "notification-event", "part": [{"name": "event-number", "valueString": "12"}]},
    ]}  # fmt: skip
    info = notification_status({"resourceType": "Bundle", "entry": [{"resource": kebab}]})
    assert info is not None
    assert (info.subscription, info.status, info.type) == ("s9", "error", "event-notification")
    assert (info.events_since_start, info.event_numbers) == (12, (12,))
    r4b = {
        "resourceType": "SubscriptionStatus", "type": "heartbeat", "status": "active",
        "subscription": {"reference": "Subscription/s2"}, "eventsSinceSubscriptionStart": "4",
    }  # fmt: skip
    info = notification_status({"resourceType": "Bundle", "entry": [{"resource": r4b}]})
    assert info is not None and (info.subscription, info.events_since_start) == ("s2", 4)
    assert notification_status({"resourceType": "Task", "id": "t1"}) is None


class FakeServer:
    """A FHIR server's Subscription endpoint in memory, recording the writes."""

    def __init__(self, statement: dict[str, Any]) -> None:
        self.statement = statement
        self.subs: dict[str, dict[str, Any]] = {}
        self.writes: list[str] = []

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        if path == "metadata":
            return self.statement
        if method == "GET" and path == "Subscription":
            entries = [{"resource": {**s, "status": "active"}} for s in self.subs.values()]
            return {"resourceType": "Bundle", "entry": entries}
        self.writes.append(f"{method} {path}")
        if method == "POST":
            new = {**dict(body or {}), "id": f"s{len(self.subs) + 1}"}
            self.subs[new["id"]] = new
            return new
        sub_id = path.split("/")[1]
        if method == "PUT":
            self.subs[sub_id] = dict(body or {})
        elif method == "DELETE":
            del self.subs[sub_id]
        return None


def test_ensure_creates_once_then_updates_only_what_changed() -> None:
    server = FakeServer(statement(topics=["https://example.org/topic/task"]))
    manager = SubscriptionManager(server, tag_system=TAG)
    first = manager.ensure([SPEC], CHANNEL)
    assert first.created == ["s1"] and server.writes == ["POST Subscription"]
    assert server.subs["s1"]["criteria"] == SPEC.topic  # offered: topic-based
    again = manager.ensure([SPEC], CHANNEL)
    assert again.unchanged == ["s1"] and server.writes == ["POST Subscription"]
    moved = Channel(**{**CHANNEL.__dict__, "heartbeat_period": 60})
    changed = manager.ensure([SPEC], moved)
    assert changed.updated == ["s1"] and server.writes[-1] == "PUT Subscription/s1"
    assert manager.remove() == ["s1"] and server.subs == {}
