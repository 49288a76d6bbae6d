"""FHIR change notifications -> domain events
(carecoord.handlers.notifications.referrals.translate), and the referrals handler driven by what
they translate to."""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from carecoord.caremodel import terminology as t
from carecoord.core.catalog import ReferralStatusChanged, parse_data
from carecoord.core.effects import Effects
from carecoord.directory.hsds import import_directory
from carecoord.errors import ConfigError, MalformedEvent
from carecoord.fhir.errors import FhirServerError
from carecoord.fhir.models import to_json
from carecoord.handlers.notifications.referrals import SOURCE, translate
from carecoord.handlers.referrals.handler import HANDLERS, attempt_of
from support.handler_context import FakeFhir, care_team, ctx, event
from support.notifications import BASE, Publisher, Reader, backport_bundle, full_entry, task_json
from support.paths import ROOT

SAMPLE = ROOT / "examples" / "directory" / "springfield-hsds.json"
SECRET = "Patient told us she sleeps in her car"  # stands in for PHI: never in an error


# ---------------------------------------------------------------------------------------------
# Payload shapes


def test_full_resource_backport_bundle_becomes_status_changed() -> None:
    (ev,) = translate(backport_bundle(full_entry(task_json())), fhir=Reader(task_json()))

    assert ev.type == "carecoord.referral.status-changed"
    assert ev.id == "fhir-notification:Task/t1/_history/3"
    assert ev.subject == "Patient/p1" and ev.source == SOURCE
    assert ev.data == {
        "task": "Task/t1",
        "status": "rejected",
        "reason": "waiting list full",
        "task_version": "3",
        "set_by": "owner",
    }
    assert ev.time == datetime(2025, 3, 10, 15, tzinfo=UTC)
    assert parse_data(ev, ReferralStatusChanged).status == "rejected"  # valid for the handler


def test_the_same_notification_twice_maps_to_the_same_event_id() -> None:
    bundle = backport_bundle(full_entry(task_json()))
    server = Reader(task_json())
    first, again = translate(bundle, fhir=server), translate(copy.deepcopy(bundle), fhir=server)
    assert [e.id for e in first] == [e.id for e in again]
    later = Reader(task_json("rejected", version="4"))
    assert translate(bundle, fhir=later)[0].id != first[0].id


def test_r4b_subscription_status_bundle_is_accepted() -> None:
    bundle = backport_bundle(full_entry(task_json("accepted")))
    bundle["type"] = "subscription-notification"
    bundle["entry"][0]["resource"] = {
        "resourceType": "SubscriptionStatus",
        "status": "active",
        "type": "event-notification",
        "subscription": {"reference": "Subscription/s1"},
        "notificationEvent": [{"eventNumber": "8", "focus": {"reference": "Task/t1"}}],
    }
    (ev,) = translate(bundle, fhir=Reader(task_json("accepted")))
    assert ev.data == {
        "task": "Task/t1",
        "status": "accepted",
        "task_version": "3",
        "set_by": "owner",
    }


def test_the_version_is_the_servers_not_the_one_the_notification_names() -> None:
    task = task_json("completed")
    del task["meta"]
    entry = full_entry(task)
    entry["fullUrl"] = f"{BASE}/Task/t1/_history/9"
    (ev,) = translate(backport_bundle(entry), fhir=Reader(task_json("completed", version="7")))
    assert ev.id == "fhir-notification:Task/t1/_history/7"


def test_id_only_entries_are_read_through_the_reader() -> None:
    reader = Reader(task_json("in-progress", version="5"))
    entry = {
        "fullUrl": f"{BASE}/Task/t1/_history/4",
        "request": {"method": "PUT", "url": "Task/t1"},
        "response": {"status": "200"},
    }
    (ev,) = translate(backport_bundle(entry), fhir=reader)
    assert reader.reads == [("Task", "t1")]
    # the current version was read: its status and version make the event
    assert ev.id == "fhir-notification:Task/t1/_history/5"
    assert ev.data == {
        "task": "Task/t1",
        "status": "in-progress",
        "task_version": "5",
        "set_by": "owner",
    }


def test_id_only_with_the_focus_only_in_the_status_is_read() -> None:
    bundle = backport_bundle()
    bundle["entry"][0]["resource"]["parameter"].append(
        {
            "name": "notification-event",
            "part": [
                {"name": "event-number", "valueString": "7"},
                {"name": "focus", "valueReference": {"reference": f"{BASE}/Task/t1"}},
            ],
        }
    )
    reader = Reader(task_json("failed", statusReason={"text": "could not reach"}))
    (ev,) = translate(bundle, fhir=reader)
    assert ev.data == {
        "task": "Task/t1",
        "status": "failed",
        "reason": "could not reach",
        "task_version": "3",
        "set_by": "owner",
    }


def test_id_only_resources_no_translator_wants_are_not_read() -> None:
    reader = Reader()
    assert translate(backport_bundle({"fullUrl": f"{BASE}/Patient/p1"}), fhir=reader) == []
    assert reader.reads == []


def test_a_resource_deleted_since_the_notification_is_skipped_but_server_errors_propagate() -> None:
    assert translate(backport_bundle({"fullUrl": f"{BASE}/Task/gone"}), fhir=Reader()) == []

    class Down(Reader):
        def read(self, resource_type: str, resource_id: str) -> Any:
            raise FhirServerError("unavailable", status=503)

    with pytest.raises(FhirServerError):
        translate(backport_bundle({"fullUrl": f"{BASE}/Task/t1"}), fhir=Down())


def test_feed_items_with_and_without_resource_are_read_once_from_the_server() -> None:
    reader = Reader(task_json("on-hold", version="6", statusReason={"text": "paused"}))
    items = [
        {"operationType": "update", "location": "Task/t1/_history/3", "resource": task_json()},
        {"operationType": "update", "location": f"{BASE}/Task/t1/_history/6"},
        {"operationType": "delete", "location": "Task/t1/_history/7"},
    ]
    events = translate(items, fhir=reader)
    assert [(e.data["status"], e.id) for e in events] == [
        ("on-hold", "fhir-notification:Task/t1/_history/6"),
    ]
    assert reader.reads == [("Task", "t1")]
    (single,) = translate(items[0], fhir=reader)
    assert single.id == events[0].id


@pytest.mark.parametrize("kind", ["heartbeat", "handshake", "query-status"])
def test_heartbeats_and_handshakes_translate_to_nothing(kind: str) -> None:
    assert translate(backport_bundle(kind=kind), fhir=Reader()) == []


# ---------------------------------------------------------------------------------------------
# What is not a referral status change


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Patient", "id": "p1", "name": [{"text": SECRET}]},
        task_json(identifier=[{"system": "http://example.org/ids", "value": "x"}]),
        task_json("requested"),  # carecoord's own write
        task_json("draft"),
        task_json("entered-in-error"),  # only the requester sets it (the IG's table)
    ],
    ids=["patient", "foreign-task", "requested", "draft", "entered-in-error"],
)
def test_resources_that_are_not_recipient_referral_updates_are_ignored(
    resource: dict[str, Any],
) -> None:
    server = Reader(resource)  # the server has it as notified
    assert translate(backport_bundle(full_entry(resource)), fhir=server) == []
    feed = {"operationType": "update", "location": "X/1", "resource": resource}
    assert translate(feed, fhir=server) == []


def test_a_cancellation_is_translated_without_claiming_who_made_it() -> None:
    """SDOHCC status table (HL7/fhir-sdoh-clinicalcare @6604b7a input/pagecontent/
    StructureDefinition-SDOHCC-TaskForReferralManagement-intro.md): cancelled is set by the
    "Requester or Referral Target". The server's Task cannot say which, so set_by is left out
    and the referrals handler decides from carecoord's own record of its cancellations."""
    resource = task_json("cancelled", statusReason={"text": "client moved away"})
    (ev,) = translate(backport_bundle(full_entry(resource)), fhir=Reader(resource))
    assert ev.data["status"] == "cancelled" and "set_by" not in ev.data
    (rejected,) = translate(backport_bundle(full_entry(task_json("rejected"))),
                            fhir=Reader(task_json("rejected")))  # fmt: skip
    assert rejected.data["set_by"] == "owner"


# ---------------------------------------------------------------------------------------------
# Malformed payloads (the notification shapes: test_notification_bundles.py)


def test_a_referral_task_without_a_patient_is_malformed_without_echoing_values() -> None:
    task = task_json(**{"for": {"reference": "Group/g1", "display": SECRET}})
    with pytest.raises(MalformedEvent, match=r"Task\.for") as raised:
        translate(backport_bundle(full_entry(task)), fhir=Reader(task))
    assert SECRET not in str(raised.value)


# ---------------------------------------------------------------------------------------------
# The referrals handler driven by translated notifications

handle = HANDLERS[0].handle
CONFIG = {"organization": "Organization/practice", "practice_phone": "+1 217 555 0100"}


class _Writer:
    def __init__(self, fake: FakeFhir) -> None:
        self.fake = fake

    def search(self, resource_type: str, params: Any) -> list[Any]:
        return self.fake.search(resource_type, params)

    def apply(self, writes: Any) -> None:
        self.fake.apply(Effects(writes=list(writes)))


@pytest.fixture
def fhir() -> FakeFhir:
    fake = FakeFhir()
    assert import_directory(_Writer(fake), json.loads(SAMPLE.read_text())).problems == []
    care_team(fake, "p1", "Practitioner/cm-1", "Practitioner/dr-1")
    need = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
    fake.apply(handle(event("carecoord.sdoh.need-identified", "p1", need), ctx(fake, CONFIG)))
    return fake


def cbo_sets(
    fhir: FakeFhir, task_id: str, status: str, reason: str | None = None
) -> dict[str, Any]:
    """The organisation updates the Task on the server, as the Gravity IG has it."""
    data = fhir.store[("Task", task_id)]
    data = {
        **data,
        "status": status,
        "meta": {"versionId": str(int(data["meta"]["versionId"]) + 1)},
    }
    if reason:
        data["statusReason"] = {"text": reason}
    fhir.store[("Task", task_id)] = data
    return data


def referral_tasks(fhir: FakeFhir) -> list[Any]:
    return sorted(
        (tk for tk in fhir.all("Task") if attempt_of(tk) is not None),
        key=lambda tk: attempt_of(tk).number,  # type: ignore[union-attr]
    )


def test_a_rejection_notified_by_the_server_moves_the_referral_on_once(fhir: FakeFhir) -> None:
    (first,) = referral_tasks(fhir)
    notification = backport_bundle(full_entry(cbo_sets(fhir, first.id, "rejected", "full")))

    (ev,) = translate(notification, fhir=fhir)
    fx = handle(ev, ctx(fhir, CONFIG))
    fhir.apply(fx)
    tasks = referral_tasks(fhir)
    assert [attempt_of(tk).number for tk in tasks] == [1, 2]  # type: ignore[union-attr]
    assert tasks[0].statusReason.text == "full"
    assert [e.type for e in fx.emits] == ["carecoord.referral.created"]

    # The server notifies again (a retry): no third attempt, no dead letter.
    (again,) = translate(copy.deepcopy(notification), fhir=fhir)
    fhir.apply(handle(again, ctx(fhir, CONFIG)))
    assert len(referral_tasks(fhir)) == 2


def test_a_status_the_task_already_has_is_a_no_op_for_the_handler(fhir: FakeFhir) -> None:
    (first,) = referral_tasks(fhir)
    notification = backport_bundle(full_entry(cbo_sets(fhir, first.id, "accepted")))
    (ev,) = translate(notification, fhir=fhir)
    fx = handle(ev, ctx(fhir, CONFIG))
    assert fx.writes == [] and fx.emits == []


def test_a_late_notification_of_an_earlier_status_is_ignored_not_dead_lettered(
    fhir: FakeFhir,
) -> None:
    (first,) = referral_tasks(fhir)
    accepted = copy.deepcopy(cbo_sets(fhir, first.id, "accepted"))
    cbo_sets(fhir, first.id, "in-progress")  # the CBO moved on before "accepted" was processed
    (late,) = translate(backport_bundle(full_entry(accepted)), fhir=fhir)
    fx = handle(late, ctx(fhir, CONFIG))
    assert fx.writes == [] and fx.emits == []


def test_the_same_attempt_is_announced_under_one_id_whatever_triggered_it(fhir: FakeFhir) -> None:
    (first,) = referral_tasks(fhir)
    direct = event(
        "carecoord.referral.status-changed", "p1",
        {"task": f"Task/{first.id}", "status": "rejected", "reason": "full"},
    )  # fmt: skip
    fx = handle(direct, ctx(fhir, CONFIG))
    fhir.apply(fx)
    # carecoord's own write of "rejected" comes back as a notification from the server
    rejected = fhir.store[("Task", first.id)]
    (echo,) = translate(backport_bundle(full_entry(rejected)), fhir=fhir)
    again = handle(echo, ctx(fhir, CONFIG))
    assert [e.id for e in again.emits] == [e.id for e in fx.emits]
    assert len(referral_tasks(fhir)) == 2


# ---------------------------------------------------------------------------------------------
# The rest-hook endpoint on the health server


TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def post(publisher: Publisher, body: bytes, **headers: str) -> Any:
    import httpx

    from carecoord.service.notification_endpoint import NotificationEndpoint
    from carecoord.service.notification_server import NotificationServer

    route = NotificationEndpoint(publisher, Reader(task_json("completed")), token=TOKEN)
    with NotificationServer(route, host="127.0.0.1", port=0) as server:
        url = f"http://127.0.0.1:{server.port}/fhir/notifications"
        return httpx.post(url, content=body, headers=headers, timeout=10)


def test_endpoint_publishes_and_answers_200() -> None:
    publisher = Publisher()
    body = json.dumps(backport_bundle({"fullUrl": f"{BASE}/Task/t1"})).encode()
    response = post(publisher, body, **AUTH, **{"Content-Type": "application/fhir+json"})
    assert response.status_code == 200
    assert [e.data["status"] for e in publisher.published] == ["completed"]
    heartbeat = post(publisher, json.dumps(backport_bundle(kind="heartbeat")).encode(), **AUTH)
    assert heartbeat.status_code == 200 and len(publisher.published) == 1


def test_endpoint_refuses_malformed_payloads_with_an_operation_outcome() -> None:
    publisher = Publisher()
    for body in (b"{not json", json.dumps({"note": SECRET}).encode()):
        response = post(publisher, body, **AUTH)
        assert response.status_code == 400
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["severity"] == "error"
        assert SECRET not in response.text
    assert publisher.published == []


def test_endpoint_answers_503_when_publishing_fails_so_the_server_retries() -> None:
    body = json.dumps(backport_bundle(full_entry(task_json()))).encode()
    response = post(Publisher(fail=True), body, **AUTH)
    assert response.status_code == 503
    assert response.json()["issue"][0]["code"] == "transient"


def test_endpoint_with_a_token_needs_the_bearer_header() -> None:
    publisher = Publisher()
    body = json.dumps(backport_bundle(full_entry(task_json()))).encode()
    assert post(publisher, body).status_code == 401
    wrong = post(publisher, body, Authorization="Bearer nope")
    assert wrong.status_code == 401 and "s3cret" not in wrong.text
    assert publisher.published == []
    assert post(publisher, body, **AUTH).status_code == 200
    assert len(publisher.published) == 1


def test_endpoint_is_only_served_at_its_path_and_never_on_the_health_port() -> None:
    import httpx

    from carecoord.service.health import HealthServer

    with HealthServer(ready=lambda: True, metrics=lambda: b"", host="127.0.0.1", port=0) as s:
        response = httpx.post(
            f"http://127.0.0.1:{s.port}/fhir/notifications", content=b"{}", headers=AUTH
        )
        assert response.status_code == 404
        assert httpx.get(f"http://127.0.0.1:{s.port}/healthz").status_code == 200
    body = json.dumps(backport_bundle(kind="heartbeat")).encode()
    assert post(Publisher(), body, **AUTH).status_code == 200


@pytest.mark.parametrize("token", ["", "  "])
def test_an_endpoint_without_a_token_is_refused_not_open(token: str) -> None:
    from carecoord.service.notification_endpoint import NotificationEndpoint

    with pytest.raises(ConfigError, match="non-empty bearer token"):
        NotificationEndpoint(Publisher(), Reader(), token=token)


# ---------------------------------------------------------------------------------------------
# Every notification is a hint: what the FHIR server has is what counts


def test_a_forged_full_resource_notification_is_checked_against_the_server() -> None:
    forged = task_json("rejected", version="9", statusReason={"text": "forged reason"})
    on_server = task_json("requested", version="2")  # what carecoord wrote: no news
    reader = Reader(on_server)
    assert translate(backport_bundle(full_entry(forged)), fhir=reader) == []
    assert reader.reads == [("Task", "t1")]
    feed = {"operationType": "update", "location": "Task/t1/_history/9", "resource": forged}
    assert translate(feed, fhir=reader) == []


def test_the_event_carries_the_servers_status_reason_and_version_not_the_notifications() -> None:
    forged = task_json("rejected", version="9", statusReason={"text": "forged reason"})
    reader = Reader(task_json("accepted", version="4"))
    (ev,) = translate(backport_bundle(full_entry(forged)), fhir=reader)
    assert ev.data == {
        "task": "Task/t1",
        "status": "accepted",
        "task_version": "4",
        "set_by": "owner",
    }
    assert ev.id == "fhir-notification:Task/t1/_history/4"


def test_a_notified_task_the_server_does_not_have_changes_nothing() -> None:
    assert translate(backport_bundle(full_entry(task_json())), fhir=Reader()) == []


LONG_TYPE = "Patienttoldusshesleepsinhercar" * 200  # free text where a resource type belongs


@pytest.mark.parametrize(
    "entry",
    [
        {"resource": {"resourceType": LONG_TYPE, "id": "not a valid id"}},
        full_entry({"resourceType": LONG_TYPE, "id": "x1"}),
        {"fullUrl": f"{BASE}/{LONG_TYPE[:60]}/x1"},
    ],
    ids=["invalid-id", "unknown-type", "id-only-unknown-type"],
)
def test_a_resource_type_of_any_length_is_never_echoed(
    entry: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from carecoord.service.logging import JsonFormatter
    from carecoord.service.notification_endpoint import NotificationEndpoint

    route = NotificationEndpoint(Publisher(), Reader(), token="tok")
    with caplog.at_level(logging.DEBUG):
        response = route(
            json.dumps(backport_bundle(entry)).encode(), {"authorization": "Bearer tok"}
        )
    assert response.status in (200, 400)
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "sleeps" not in response.body.decode()
    assert "sleeps" not in logged


# ---------------------------------------------------------------------------------------------
# Any other carecoord Task reports its status too (carecoord.handlers.notifications.tasks)


def _clinical_task_json(status: str, version: str = "4", **extra: Any) -> dict[str, Any]:
    from carecoord.caremodel.builders import clinical_review_task

    task = clinical_review_task(
        key="q-1",
        patient="Patient/p1",
        provider="Practitioner/dr-1",
        question=SECRET,
        raised_by="Practitioner/cm-1",
        authored_on=datetime(2025, 3, 1, tzinfo=UTC),
    )
    data = to_json(task)
    data.update(id="c1", status=status, meta={"versionId": version})
    data["lastModified"] = "2025-03-10T16:00:00+00:00"
    data.update(extra)
    return data


def test_a_carecoord_task_that_is_not_a_referral_reports_its_status_from_the_server() -> None:
    on_server = _clinical_task_json(
        "completed",
        statusReason={"text": SECRET},
        output=[{"type": {"text": "answer"}, "valueString": SECRET}],
    )
    claimed = _clinical_task_json("rejected", version="3")
    server = Reader(on_server)
    (event,) = translate(backport_bundle(full_entry(claimed)), fhir=server)
    assert event.type == "carecoord.task.status-changed"
    assert event.id == "fhir-notification:Task/c1/_history/4"
    assert event.subject == "Patient/p1"
    assert event.data == {"task": "Task/c1", "status": "completed", "task_version": "4"}
    assert SECRET not in event.to_json_bytes().decode()
    # A referral Task with another code is a carecoord Task too: reported, not as a referral.
    approve = task_json(code={"coding": [{"system": t.TASK_CODE_SYSTEM, "code": "approve"}]})
    (other,) = translate(backport_bundle(full_entry(approve)), fhir=Reader(approve))
    assert other.type == "carecoord.task.status-changed"
    # carecoord's own statuses are not news.
    assert (
        translate(
            backport_bundle(full_entry(claimed)), fhir=Reader(_clinical_task_json("requested"))
        )
        == []
    )
