"""carecoord's own Subscriptions end to end on the embedded FHIR server (sekmet), the real broker
and the running service: registered at start (`CARECOORD_SUBSCRIPTIONS_ENSURE_AT_START`), a
community organisation's rejection reaches carecoord through them, and notifications lost on
the way are noticed (the heartbeat counts more events than were heard) and recovered.

sekmet offers topic-based Subscriptions (handshake, heartbeats, `$status`) but no `$events`: the
recovery through `$events` runs against a stand-in that adds it, answering from the
notifications sekmet really sent (recorded by the lossy hop that dropped them). Without it, the
reconcile trigger is asked."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from carecoord.core.envelope import new_event
from carecoord.directory.hsds import import_directory
from carecoord.fhir.client import FhirClient
from carecoord.fhir.models import to_json
from carecoord.handlers.referrals.handler import attempt_of
from carecoord.local import free_port
from carecoord.service.app import Service
from carecoord.service.subscriptions import remove
from carecoord.settings import load_settings
from support.referrals import patient_referral_tasks as _referral_tasks
from support.waiting import wait_for

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "examples" / "directory" / "springfield-hsds.json"
TOKEN = "subs-e2e-token"
PATH = "/fhir/notifications"


class LossyHop(ThreadingHTTPServer):
    """Between the FHIR server and carecoord: forwards every notification, except that while
    `dropping` it answers event notifications 200 itself and keeps them (lost on the way)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hop)
        self.target = ""
        self.dropping = True
        self.dropped: list[dict[str, Any]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{PATH}"

    def dropped_numbers(self) -> list[int]:
        return [
            int(p["valueString"]) for b in self.dropped for p in _event_parts(b, "event-number")
        ]


def _status(bundle: dict[str, Any]) -> dict[str, Any]:
    return bundle["entry"][0]["resource"]  # type: ignore[no-any-return]


def _event_parts(bundle: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [
        part
        for param in _status(bundle)["parameter"]
        if param["name"] == "notification-event"
        for part in param["part"]
        if part["name"] == name
    ]


def _number(event: dict[str, Any]) -> int:
    return int(next(p["valueString"] for p in event["part"] if p["name"] == "event-number"))


def _kind(bundle: dict[str, Any]) -> str:
    return next(p["valueCode"] for p in _status(bundle)["parameter"] if p["name"] == "type")  # type: ignore[no-any-return]


class _Hop(BaseHTTPRequestHandler):
    server: LossyHop

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        payload = json.loads(body)
        lost = payload.get("type") == "history" and _kind(payload) == "event-notification"
        if self.server.dropping and lost:
            self.server.dropped.append(payload)
            self._answer(200, b"{}")
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        forwarded = httpx.post(self.server.target, content=body, headers=headers, timeout=30)
        self._answer(forwarded.status_code, forwarded.content)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class EventsStandIn(httpx.BaseTransport):
    """The embedded server plus the `$events` operation it lacks (declared in /metadata as the
    IG's OperationDefinition backport-subscription-events), answered from what the server sent."""

    def __init__(self, hop: LossyHop) -> None:
        self._inner = httpx.HTTPTransport()
        self._hop = hop
        self.asked: list[tuple[str, int, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/$events"):
            sub_id = path.rsplit("/", 2)[-2]
            since = int(request.url.params["eventsSinceNumber"])
            until = int(request.url.params["eventsUntilNumber"])
            self.asked.append((sub_id, since, until))
            return httpx.Response(200, json=self._events(since, until))
        response = self._inner.handle_request(request)
        if path.endswith("/metadata") and "_summary" not in request.url.params:
            response.read()
            statement = response.json()
            for rest in statement.get("rest", []):
                for res in rest.get("resource", []):
                    if res["type"] == "Subscription":
                        res.setdefault("operation", []).append({
                            "name": "events",
                            "definition": "http://hl7.org/fhir/uv/subscriptions-backport/"
                            "OperationDefinition/backport-subscription-events",
                        })  # fmt: skip
            return httpx.Response(200, json=statement)
        return response

    def _events(self, since: int, until: int) -> dict[str, Any]:
        """A query-event history Bundle (Operations.fsh, $events' `return`) of the events the
        server sent with numbers since..until."""
        events = [
            param
            for bundle in self._hop.dropped
            for param in _status(bundle)["parameter"]
            if param["name"] == "notification-event" and since <= _number(param) <= until
        ]
        first = _status(self._hop.dropped[0])
        keep = [p for p in first["parameter"] if p["name"] in ("subscription", "topic", "status")]
        status = {
            "resourceType": "Parameters",
            "parameter": [
                *keep,
                {"name": "type", "valueCode": "query-event"},
                {"name": "events-since-subscription-start", "valueString": str(until)},
                *events,
            ],
        }
        return {"resourceType": "Bundle", "type": "history", "entry": [{"resource": status}]}

    def close(self) -> None:
        self._inner.close()


class RecordingTrigger:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def reconcile_now(self, reason: str) -> None:
        self.reasons.append(reason)


@pytest.fixture
def directory(fhir_base_url: str) -> None:
    with FhirClient(fhir_base_url) as client:
        import_directory(client, json.loads(SAMPLE.read_text()))


@pytest.fixture
def cleanup(fhir_base_url: str) -> Iterator[None]:
    yield
    with FhirClient(fhir_base_url) as client:
        remove(client)


def _task_topic(fhir_base_url: str, unique: str) -> str:
    """The embedded server's topic for referral Task updates (each server names its own)."""
    from sekmet.subscriptions import backport

    topic = backport.topic_basic(
        f"carecoord-subs-{unique}", "Task changed", "A Task was updated", "Task", "true",
        [("code", "Task")], interactions=("update",),
    )  # fmt: skip
    httpx.put(f"{fhir_base_url}/Basic/{topic['id']}", json=topic, timeout=30).raise_for_status()
    return str(next(e["valueUri"] for e in topic["extension"] if e["url"].endswith(".url")))


def _start(
    kafka_bootstrap: str, fhir_base_url: str, unique: str, *, fhir: FhirClient | None = None,
    reconcile: RecordingTrigger | None = None, **overrides: Any,
) -> tuple[Service, threading.Thread]:  # fmt: skip
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap, fhir_base_url=fhir_base_url,
        handlers_enabled=["enrolment", "referrals"], health_port=0, health_host="127.0.0.1",
        handlers={"referrals": {"organization": "Organization/practice",
                                "practice_phone": "+1 555 0100"}},
        notifications_enabled=True, notifications_token=TOKEN,
        subscriptions_ensure_at_start=True, subscriptions_kinds="referral-tasks",
        sweeper_interval=0, topic_in=f"se-in-{unique}", topic_out=f"se-out-{unique}",
        topic_dlq=f"se-dlq-{unique}", group_id=f"se-{unique}",
        kafka_options={"session_timeout_ms": 4000, "heartbeat_interval_ms": 1000},
        **overrides,
    )  # fmt: skip
    svc = Service(settings, fhir=fhir, reconcile=reconcile)
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    wait_for(svc.ready, 60.0, "the service to be ready")
    return svc, thread


def _refer_and_reject(service: Service, fhir_base_url: str, unique: str) -> tuple[FhirClient, str]:
    """A patient referred; the organisation rejects the first referral Task on the FHIR server."""
    patient = f"se-{unique}"
    service.publish([
        new_event("carecoord.patient.enrolled", patient,
                  {"program": "CCM", "provider": "Practitioner/dr-okafor",
                   "care_manager": f"Practitioner/cm-{unique}", "start": "2026-11-02"}),
        new_event("carecoord.sdoh.need-identified", patient,
                  {"domain": "food-insecurity", "postal_code": "62701",
                   "consent_to_contact": True}),
    ])  # fmt: skip
    fhir = FhirClient(fhir_base_url)
    (first,) = wait_for(lambda: _referral_tasks(fhir, patient), 60.0, "the referral Task")
    rejected = to_json(first)
    rejected["status"] = "rejected"
    rejected["statusReason"] = {"text": "waiting list full"}
    httpx.put(f"{fhir_base_url}/Task/{first.id}", json=rejected, timeout=30).raise_for_status()
    return fhir, patient


def _moved_on(fhir: FhirClient, patient: str) -> list[Any]:
    return wait_for(
        lambda: (found := _referral_tasks(fhir, patient)) and len(found) >= 2 and found,
        90.0, "the second referral Task",
    )  # fmt: skip


def test_subscriptions_registered_at_start_deliver_the_rejection(
    kafka_bootstrap: str, fhir_base_url: str, unique: str, directory: None, cleanup: None
) -> None:
    # criteria-based (no topic configured): the server posts the bare Task
    port = free_port()
    service, thread = _start(
        kafka_bootstrap, fhir_base_url, unique, notifications_port=port,
        notifications_public_url=f"http://127.0.0.1:{port}{PATH}",
    )  # fmt: skip
    try:
        fhir, patient = _refer_and_reject(service, fhir_base_url, unique)
        tasks = _moved_on(fhir, patient)
        assert [attempt_of(t).number for t in tasks] == [1, 2]  # type: ignore[union-attr]
        received = service.metrics.registry.get_sample_value(
            "carecoord_notifications_received_total", {"type": "resource"}
        )
        assert received and received >= 1
    finally:
        service.request_stop()
        thread.join(30)


def _lossy_service(
    kafka_bootstrap: str, fhir_base_url: str, unique: str, hop: LossyHop, **kwargs: Any
) -> tuple[Service, threading.Thread]:
    port = free_port()
    hop.target = f"http://127.0.0.1:{port}{PATH}"  # the handshake comes while the service starts
    return _start(
        kafka_bootstrap, fhir_base_url, unique, notifications_port=port,
        notifications_public_url=hop.url,
        subscriptions_topics={"referral-tasks": _task_topic(fhir_base_url, unique)},
        subscriptions_heartbeat_period=2, **kwargs,
    )  # fmt: skip


def test_lost_notifications_are_recovered_with_events(
    kafka_bootstrap: str, fhir_base_url: str, unique: str, directory: None, cleanup: None
) -> None:
    hop = LossyHop()
    stand_in = EventsStandIn(hop)
    service, thread = _lossy_service(
        kafka_bootstrap, fhir_base_url, unique, hop,
        fhir=FhirClient(fhir_base_url, transport=stand_in),
    )  # fmt: skip
    try:
        fhir, patient = _refer_and_reject(service, fhir_base_url, unique)
        rejected = _referral_tasks(fhir, patient)[0]
        wait_for(
            lambda: any(
                p["valueReference"]["reference"].endswith(f"Task/{rejected.id}")
                for b in hop.dropped for p in _event_parts(b, "focus")
            ),
            30.0, "the server's notification of the rejection (dropped on the way)",
        )  # fmt: skip
        hop.dropping = False  # what follows arrives: the next heartbeat counts the lost ones
        tasks = _moved_on(fhir, patient)
        assert [attempt_of(t).number for t in tasks] == [1, 2]  # type: ignore[union-attr]
        # every lost number was asked for (in one $events or several: heartbeats come meanwhile)
        asked = {n for _, since, until in stand_in.asked for n in range(since, until + 1)}
        assert set(hop.dropped_numbers()) <= asked
        # noticed by a gap (a heartbeat counting more) or a silence (events sent, none heard)
        recovered = service.metrics.registry.get_sample_value(
            "carecoord_notification_recoveries_total", {"via": "events"}
        )
        assert recovered and recovered >= 1
    finally:
        service.request_stop()
        thread.join(30)
        hop.shutdown()


def test_lost_notifications_ask_the_reconciler_where_the_server_has_no_events(
    kafka_bootstrap: str, fhir_base_url: str, unique: str, directory: None, cleanup: None
) -> None:
    hop = LossyHop()
    trigger = RecordingTrigger()
    service, thread = _lossy_service(kafka_bootstrap, fhir_base_url, unique, hop, reconcile=trigger)
    try:
        _refer_and_reject(service, fhir_base_url, unique)
        wait_for(lambda: hop.dropped, 30.0, "a notification dropped on the way")
        hop.dropping = False
        (reason, *_) = wait_for(lambda: trigger.reasons, 30.0, "the reconcile trigger")
        assert reason.startswith("subscription ")
        assert reason.endswith(("event numbers skipped", "heartbeat missed"))
    finally:
        service.request_stop()
        thread.join(30)
        hop.shutdown()
