"""The notification endpoint with a SubscriptionWatch: handshakes and heartbeats answered with no
event, duplicates dropped unread, gaps in the event numbers and missed heartbeats recovered
($status, then $events or the reconcile trigger), Medplum's HMAC signature checked, metrics."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from carecoord.fhir.errors import FhirNotFound, FhirServerError
from carecoord.fhir.models import parse_resource, to_json
from carecoord.fhir.subscriptions import StatusInfo
from carecoord.handlers.referrals.builders import referral_task
from carecoord.service.metrics import ServiceMetrics
from carecoord.service.notification_endpoint import NotificationEndpoint
from carecoord.service.subscription_watch import SubscriptionWatch, WarningReconcileTrigger

TOKEN = "watch-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
BASE = "http://fhir.example.org/fhir"


def task(task_id: str, version: str = "2") -> dict[str, Any]:
    data = to_json(
        referral_task(
            key=f"sr-{task_id}:1", patient="Patient/p1", domain="food-insecurity",
            service_request=f"ServiceRequest/sr-{task_id}", owner="Organization/pantry",
            requester="PractitionerRole/cm-1", authored_on=datetime(2025, 3, 1, tzinfo=UTC),
        )
    )  # fmt: skip
    data.update(id=task_id, status="accepted", meta={"versionId": version})
    return data


def notification(
    kind: str, since: int, *numbers: int, sub: str = "s1", focus: str = "t1"
) -> dict[str, Any]:
    """An R4 Backport notification Bundle (BackportNotificationR4.fsh), id-only: the events'
    focus names the Task."""
    params: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{BASE}/Subscription/{sub}"}},
        {"name": "status", "valueCode": "active"},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(since)},
    ]
    for n in numbers:
        params.append({"name": "notification-event", "part": [
            {"name": "event-number", "valueString": str(n)},
            {"name": "focus", "valueReference": {"reference": f"{BASE}/Task/{focus}"}},
        ]})  # fmt: skip
    status = {"resourceType": "Parameters", "parameter": params}
    return {"resourceType": "Bundle", "type": "history", "entry": [{"resource": status}]}


class Reader:
    def __init__(self, *resources: dict[str, Any]) -> None:
        self.resources = {(r["resourceType"], r["id"]): r for r in resources}
        self.reads: list[str] = []

    def read(self, resource_type: str, resource_id: str) -> Any:
        self.reads.append(f"{resource_type}/{resource_id}")
        if (resource_type, resource_id) not in self.resources:
            raise FhirNotFound("not found", status=404)
        return parse_resource(copy.deepcopy(self.resources[(resource_type, resource_id)]))

    def search(self, resource_type: str, params: Any) -> list[Any]:
        raise AssertionError("never searches")


class Server:
    """A FHIR server's $status / $events for one subscription (a stand-in for the unit)."""

    def __init__(self, count: int, status: str = "active") -> None:
        self.count = count
        self.state = status
        self.asked: list[str] = []

    def status(self, sub_id: str) -> StatusInfo | None:
        self.asked.append(f"$status {sub_id}")
        return StatusInfo(sub_id, "query-status", self.state, self.count, ())

    def events(self, sub_id: str, since: int, until: int) -> dict[str, Any] | None:
        self.asked.append(f"$events {sub_id} {since}..{until}")
        bundle = notification("query-event", self.count, *range(since, until + 1), focus="t2")
        return bundle


class Trigger:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def reconcile_now(self, reason: str) -> None:
        self.reasons.append(reason)


class Setup:
    def __init__(
        self,
        *,
        server: Server | None = None,
        events_offered: bool = False,
        secret: str | None = None,
    ) -> None:
        self.now = 0.0
        self.metrics = ServiceMetrics()
        self.trigger = Trigger()
        self.reader = Reader(task("t1"), task("t2"))
        self.published: list[Any] = []
        self.watch = SubscriptionWatch(
            trigger=self.trigger, server=server, events_offered=events_offered,
            metrics=self.metrics, clock=lambda: self.now, run=lambda job: job(),
        )  # fmt: skip
        self.endpoint = NotificationEndpoint(
            self.published.extend, self.reader, token=TOKEN, watch=self.watch, hmac_secret=secret
        )
        self.watch.replay = self.endpoint.replay

    def post(self, payload: Any, **headers: str) -> tuple[int, str]:
        response = self.endpoint(json.dumps(payload).encode(), {**AUTH, **headers})
        diagnostics = json.loads(response.body)["issue"][0]["diagnostics"]
        return response.status, diagnostics

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


def test_a_handshake_is_200_and_processes_nothing() -> None:
    s = Setup()
    assert s.post(notification("handshake", 0)) == (200, "0 event(s)")
    assert s.reader.reads == [] and s.published == []
    assert s.metric("carecoord_notifications_received_total", type="handshake") == 1


def test_an_event_is_processed_and_its_repeat_dropped_unread() -> None:
    s = Setup()
    s.post(notification("handshake", 0))
    assert s.post(notification("event-notification", 1, 1)) == (200, "1 event(s)")
    assert s.reader.reads == ["Task/t1"]
    assert s.post(notification("event-notification", 1, 1)) == (200, "duplicate: 0 event(s)")
    assert s.reader.reads == ["Task/t1"]  # not read again
    assert len(s.published) == 1
    assert s.metric("carecoord_notification_duplicates_dropped_total") == 1
    assert s.trigger.reasons == []


def test_an_event_that_failed_is_no_duplicate_when_the_server_retries_it() -> None:
    s = Setup()
    s.post(notification("handshake", 0))
    s.reader.resources.clear()  # the read fails (gone): nothing published... then it is back
    failing = Reader()

    def broken(resource_type: str, resource_id: str) -> Any:
        raise FhirServerError("down", status=503)

    failing.read = broken  # type: ignore[method-assign]
    endpoint = NotificationEndpoint(s.published.extend, failing, token=TOKEN, watch=s.watch)
    response = endpoint(json.dumps(notification("event-notification", 1, 1)).encode(), AUTH)
    assert response.status == 503
    s.reader.resources[("Task", "t1")] = task("t1")
    assert s.post(notification("event-notification", 1, 1)) == (200, "1 event(s)")


def test_a_gap_in_the_event_numbers_is_recovered_with_events_where_offered() -> None:
    server = Server(count=3)
    s = Setup(server=server, events_offered=True)
    s.post(notification("handshake", 0))
    s.post(notification("event-notification", 1, 1))
    # event 2 is lost; 3 arrives
    assert s.post(notification("event-notification", 3, 3)) == (200, "1 event(s)")
    assert server.asked == ["$status s1", "$events s1 2..2"]
    assert s.reader.reads == ["Task/t1", "Task/t2", "Task/t1"]  # event 2's focus was t2
    assert s.metric("carecoord_notification_gaps_total") == 1
    assert s.metric("carecoord_notification_recoveries_total", via="events") == 1
    assert s.trigger.reasons == []
    # the recovered event is done: its late delivery is a duplicate
    late = notification("event-notification", 3, 2, focus="t2")
    assert s.post(late) == (200, "duplicate: 0 event(s)")


def test_a_number_seen_again_for_another_resource_is_processed() -> None:
    # e.g. a server whose event counter restarted with it: nothing is dropped for the number
    s = Setup()
    s.post(notification("handshake", 0))
    s.post(notification("event-notification", 1, 1, focus="t1"))
    assert s.post(notification("event-notification", 1, 1, focus="t2")) == (200, "1 event(s)")
    assert s.reader.reads == ["Task/t1", "Task/t2"]
    assert s.metric("carecoord_notification_duplicates_dropped_total") == 0


def test_a_heartbeat_counting_fewer_events_rebaselines_without_a_gap() -> None:
    s = Setup(server=Server(count=0))
    s.watch.watch("s1", heartbeat_period=60, events_since=30)
    s.post(notification("heartbeat", 0))  # the server's count restarted
    s.post(notification("event-notification", 1, 1))
    assert s.metric("carecoord_notification_gaps_total") == 0
    assert s.trigger.reasons == []


def test_a_gap_asks_the_poller_where_the_server_has_no_events_operation() -> None:
    server = Server(count=5)
    s = Setup(server=server, events_offered=False)
    s.post(notification("handshake", 0))
    s.post(notification("event-notification", 1, 1))
    s.post(notification("event-notification", 5, 5))
    assert server.asked == ["$status s1"]
    assert s.trigger.reasons == ["subscription s1: event numbers skipped"]
    assert s.metric("carecoord_notification_recoveries_total", via="reconcile") == 1


def test_a_heartbeat_counting_more_events_than_heard_is_a_gap() -> None:
    s = Setup(server=Server(count=2))
    s.post(notification("handshake", 0))
    assert s.post(notification("heartbeat", 2)) == (200, "0 event(s)")
    assert s.metric("carecoord_notification_gaps_total") == 1
    assert len(s.trigger.reasons) == 1
    s.post(notification("heartbeat", 2))  # the same count again: nothing new
    assert len(s.trigger.reasons) == 1


def test_a_restart_rebaselined_by_status_is_no_gap() -> None:
    s = Setup(server=Server(count=40))
    s.watch.watch("s1", heartbeat_period=300, events_since=40)  # $status at start
    assert s.post(notification("event-notification", 41, 41)) == (200, "1 event(s)")
    assert s.metric("carecoord_notification_gaps_total") == 0
    assert s.trigger.reasons == []


def test_an_unknown_subscription_is_baselined_by_its_first_event() -> None:
    s = Setup(server=Server(count=12))
    assert s.post(notification("event-notification", 12, 12)) == (200, "1 event(s)")
    assert s.metric("carecoord_notification_gaps_total") == 0


def test_a_silent_subscription_is_missed_after_twice_its_heartbeat_period() -> None:
    server = Server(count=0)
    s = Setup(server=server)
    s.watch.watch("s1", heartbeat_period=300, events_since=0)
    s.now = 600.0
    s.watch.check()
    assert s.metric("carecoord_subscription_heartbeats_missed_total") == 0
    s.now = 600.5
    s.watch.check()
    s.watch.check()  # once per silence
    assert s.metric("carecoord_subscription_heartbeats_missed_total") == 1
    assert server.asked == ["$status s1"]  # nothing missing per the server: no poller run
    assert s.metric("carecoord_notification_recoveries_total", via="none") == 1
    s.post(notification("heartbeat", 0))  # heard again: a later silence counts again
    s.now = 1300.0
    s.watch.check()
    assert s.metric("carecoord_subscription_heartbeats_missed_total") == 2


def test_a_missed_heartbeat_without_status_asks_the_poller() -> None:
    s = Setup(server=None)
    s.watch.watch("s1", heartbeat_period=60, events_since=0)
    s.now = 121.0
    s.watch.check()
    assert s.trigger.reasons == ["subscription s1: heartbeat missed"]


def test_a_subscription_in_error_is_a_warning_and_a_gauge(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = Setup(server=Server(count=0, status="error"))
    s.watch.watch("s1", heartbeat_period=60, events_since=0)
    s.now = 200.0
    s.watch.check()
    assert s.metric("carecoord_subscriptions_in_error") == 1
    assert any(r.message == "FHIR subscription in error" for r in caplog.records)


def test_the_default_trigger_warns(caplog: pytest.LogCaptureFixture) -> None:
    WarningReconcileTrigger().reconcile_now("subscription s1: heartbeat missed")
    (record,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "no reconciler" in record.message


def signed(secret: str) -> Callable[[bytes], str]:
    return lambda body: hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_medplum_notification_with_a_good_signature_is_processed() -> None:
    s = Setup(secret="medplum-secret")
    body = json.dumps(task("t1")).encode()  # criteria-based: the bare resource
    response = s.endpoint(body, {**AUTH, "x-signature": signed("medplum-secret")(body)})
    assert response.status == 200
    assert s.reader.reads == ["Task/t1"] and len(s.published) == 1
    assert s.metric("carecoord_notifications_received_total", type="resource") == 1


@pytest.mark.parametrize("signature", [None, "", "00" * 32, "wrong-secret"])
def test_a_bad_or_missing_signature_is_401_and_nothing_is_processed(
    signature: str | None,
) -> None:
    s = Setup(secret="medplum-secret")
    body = json.dumps(task("t1")).encode()
    headers = dict(AUTH)
    if signature == "wrong-secret":
        headers["x-signature"] = signed("another")(body)
    elif signature is not None:
        headers["x-signature"] = signature
    response = s.endpoint(body, headers)
    assert response.status == 401
    assert s.reader.reads == [] and s.published == []


def test_the_signature_covers_the_body_as_sent() -> None:
    s = Setup(secret="medplum-secret")
    body = json.dumps(task("t1")).encode()
    tampered = json.dumps(task("t2")).encode()
    response = s.endpoint(tampered, {**AUTH, "x-signature": signed("medplum-secret")(body)})
    assert response.status == 401


class Listed:
    """The server's list of carecoord's Subscriptions (SubscriptionManager.registered)."""

    def __init__(self, *subs: tuple[str, str, int | None]) -> None:
        from carecoord.fhir.subscriptions import Registered

        self.subs = [
            Registered(sub_id, "referral-tasks", status, "topic", "x", None, period, {})
            for sub_id, status, period in subs
        ]

    def registered(self) -> list[Any]:
        return self.subs


def test_the_periodic_list_reports_errors_and_watches_new_heartbeats() -> None:
    s = Setup(server=Server(count=0))
    listed = Listed(("s1", "error", None), ("s2", "active", 60))
    s.watch.refresh(listed)  # type: ignore[arg-type]
    assert s.metric("carecoord_subscriptions_in_error") == 1
    s.now = 121.0
    s.watch.check()
    assert s.metric("carecoord_subscription_heartbeats_missed_total") == 1  # s2's silence
    listed.subs[0] = listed.subs[0].__class__(**{**listed.subs[0].__dict__, "status": "active"})
    s.watch.refresh(listed)  # type: ignore[arg-type]
    assert s.metric("carecoord_subscriptions_in_error") == 0
