"""FHIR change notifications end to end: the running service's rest-hook endpoint, the real broker
and the real FHIR server. A community organisation rejects the referral Task on the FHIR server,
the server's (here: the test's) notification reaches carecoord, and the referral moves on to the
next candidate."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from carecoord.core.envelope import CloudEvent, new_event
from carecoord.directory.hsds import import_directory
from carecoord.events.broker import KafkaBroker, KafkaConnection
from carecoord.events.dlq import list_dead_letters
from carecoord.fhir.client import FhirClient
from carecoord.fhir.models import to_json
from carecoord.handlers.referrals.handler import attempt_of
from carecoord.service.app import Service
from carecoord.settings import load_settings
from support.enrolment import consented
from support.referrals import patient_referral_tasks as _referral_tasks
from support.waiting import wait_for

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "examples" / "directory" / "springfield-hsds.json"
TOKEN = "notify-test-token"


@pytest.fixture
def topics(unique: str) -> dict[str, str]:
    return {
        "topic_in": f"nt-in-{unique}",
        "topic_out": f"nt-out-{unique}",
        "topic_dlq": f"nt-dlq-{unique}",
        "group_id": f"nt-{unique}",
    }


@pytest.fixture
def service(kafka_bootstrap: str, fhir_base_url: str, topics: dict[str, str]) -> Iterator[Service]:
    with FhirClient(fhir_base_url) as client:  # idempotent: other modules import it too
        assert import_directory(client, json.loads(SAMPLE.read_text())).problems == []
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        fhir_base_url=fhir_base_url,
        handlers_enabled=["enrolment", "referrals"],
        handlers={
            "referrals": {
                "organization": "Organization/practice-nt",
                "practice_phone": "+1 217 555 0100",
            }
        },
        health_port=0,
        health_host="127.0.0.1",
        notifications_port=0,
        sweeper_interval=0,
        notifications_enabled=True,
        notifications_token=TOKEN,
        kafka_options={"session_timeout_ms": 4000, "heartbeat_interval_ms": 1000},
        **topics,
    )
    svc = Service(settings)
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    wait_for(svc.ready, 60.0, "the service to be ready")
    yield svc
    svc.request_stop()
    thread.join(30)


def _id_only_notification(fhir_base_url: str, task: dict[str, Any]) -> dict[str, Any]:
    """What an R4 Subscriptions Backport server posts for an id-only Task subscription."""
    ref = f"Task/{task['id']}/_history/{task['meta']['versionId']}"
    status = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/cbo-tasks"}},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": "event-notification"},
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": "1"},
                    {"name": "focus", "valueReference": {"reference": ref}},
                ],
            },
        ],
    }
    return {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [
            {"fullUrl": "urn:uuid:6a0e1f52-7d1c-4c55-9a3e-0d6a3b1c2f01", "resource": status},
            {"fullUrl": f"{fhir_base_url}/{ref}", "request": {"method": "PUT", "url": ref}},
        ],
    }


def _full_resource_notification(fhir_base_url: str, task: dict[str, Any]) -> dict[str, Any]:
    """The same notification with the whole Task in the entry (full-resource payload)."""
    bundle = _id_only_notification(fhir_base_url, task)
    bundle["entry"][1]["resource"] = task
    return bundle


def _notifications_url(service: Service) -> str:
    assert service.notifications is not None  # its own listener, not the health port
    return f"http://127.0.0.1:{service.notifications.port}/fhir/notifications"


def test_a_cbo_rejection_notified_by_the_fhir_server_moves_the_referral_to_the_next_candidate(
    service: Service,
    fhir_base_url: str,
    kafka_bootstrap: str,
    topics: dict[str, str],
    unique: str,
) -> None:
    patient = f"notif-{unique}"
    enrolled = consented(
        {
            "program": "CCM",
            "provider": f"Practitioner/dr-{unique}",
            "care_manager": f"Practitioner/cm-{unique}",
            "start": "2026-03-02",
        }
    )
    need = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
    service.publish(
        [
            new_event("carecoord.patient.enrolled", patient, enrolled),
            new_event("carecoord.sdoh.need-identified", patient, need),
        ]
    )
    fhir = FhirClient(fhir_base_url)
    (first,) = wait_for(lambda: _referral_tasks(fhir, patient), 60.0, "the first referral Task")
    assert first.status == "requested"

    # The organisation rejects the referral on the FHIR server (Gravity: the recipient's status).
    rejected = to_json(first)
    rejected["status"] = "rejected"
    rejected["statusReason"] = {"text": "waiting list full"}
    put = httpx.put(f"{fhir_base_url}/Task/{first.id}", json=rejected, timeout=10)
    put.raise_for_status()
    stored = to_json(fhir.read("Task", str(first.id)))
    notification = _id_only_notification(fhir_base_url, stored)

    url = _notifications_url(service)
    refused = httpx.post(url, json=notification, timeout=30)
    assert refused.status_code == 401
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"}
    accepted = httpx.post(url, json=notification, headers=headers, timeout=30)
    assert accepted.status_code == 200, accepted.text

    def two_tasks() -> list[Any] | None:
        found = _referral_tasks(fhir, patient)
        return found if len(found) >= 2 else None

    tasks = wait_for(two_tasks, 60.0, "the second referral Task")
    assert [attempt_of(tk).number for tk in tasks] == [1, 2]  # type: ignore[union-attr]
    first_now, second = tasks
    assert (first_now.status, first_now.statusReason.text) == ("rejected", "waiting list full")
    assert second.status == "requested"
    assert attempt_of(second).service != attempt_of(first).service  # type: ignore[union-attr]
    (sr,) = [
        r
        for r in fhir.search("ServiceRequest", {"subject": f"Patient/{patient}"})
        if r.get_resource_type() == "ServiceRequest"
    ]
    assert sr.performer[0].reference == second.owner.reference

    # The server retries the same notification (same subscription, same event number): dropped
    # as a duplicate, unread and unpublished; nothing new, nothing dead-lettered.
    again = httpx.post(url, json=notification, headers=headers, timeout=30)
    assert again.status_code == 200
    assert again.json()["issue"][0]["diagnostics"] == "duplicate: 0 event(s)"
    broker = KafkaBroker(KafkaConnection(bootstrap=kafka_bootstrap))

    def inputs() -> list[CloudEvent]:
        records = broker.read_topic(topics["topic_in"], timeout=3.0)
        return [CloudEvent.from_json_bytes(r.value) for r in records]

    notified = [e for e in inputs() if e.type == "carecoord.referral.status-changed"]
    assert len(notified) == 1
    assert notified[0].data == {
        "task": f"Task/{first.id}",
        "status": "rejected",
        "reason": "waiting list full",
        "task_version": first_now.meta.versionId,
        "set_by": "owner",
    }

    def created() -> list[CloudEvent]:
        records = broker.read_topic(topics["topic_out"], timeout=3.0)
        events = [CloudEvent.from_json_bytes(r.value) for r in records]
        return [e for e in events if e.type == "carecoord.referral.created"]

    # The retry was a duplicate: attempt 2 is announced once (its event was published already).
    def two_announced() -> list[CloudEvent] | None:
        found = created()
        return found if len(found) >= 2 else None

    announced = wait_for(two_announced, 60.0, "the referral's two attempts announced")
    assert [e.data["attempt"] for e in announced] == [1, 2]
    assert len(_referral_tasks(fhir, patient)) == 2
    assert list(list_dead_letters(broker, topics["topic_dlq"], timeout=3.0)) == []
    fhir.close()


def test_a_forged_rejection_changes_no_referral_the_server_has_the_last_word(
    service: Service,
    fhir_base_url: str,
    kafka_bootstrap: str,
    topics: dict[str, str],
    unique: str,
) -> None:
    patient = f"forged-{unique}"
    enrolled = consented(
        {
            "program": "CCM",
            "provider": f"Practitioner/dr-{unique}",
            "care_manager": f"Practitioner/cm-{unique}",
            "start": "2026-03-02",
        }
    )
    need = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
    service.publish(
        [
            new_event("carecoord.patient.enrolled", patient, enrolled),
            new_event("carecoord.sdoh.need-identified", patient, need),
        ]
    )
    fhir = FhirClient(fhir_base_url)
    (first,) = wait_for(lambda: _referral_tasks(fhir, patient), 60.0, "the first referral Task")

    # A sender with the token claims the organisation rejected it; the server says otherwise.
    forged = to_json(first)
    forged["status"] = "rejected"
    forged["statusReason"] = {"text": "forged reason"}
    forged["meta"] = {**forged.get("meta", {}), "versionId": "999"}
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"}
    answer = httpx.post(
        _notifications_url(service),
        json=_full_resource_notification(fhir_base_url, forged),
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text

    # Publishing happens before the answer: nothing was published, nothing changed.
    broker = KafkaBroker(KafkaConnection(bootstrap=kafka_bootstrap))
    records = broker.read_topic(topics["topic_in"], timeout=3.0)
    types = [CloudEvent.from_json_bytes(r.value).type for r in records]
    assert "carecoord.referral.status-changed" not in types
    (still,) = _referral_tasks(fhir, patient)
    assert still.status == "requested" and still.statusReason is None
    fhir.close()


def _cbo_sets(fhir_base_url: str, fhir: FhirClient, task: Any, **changes: Any) -> dict[str, Any]:
    """The organisation updates the Task on the FHIR server (as the Gravity IG has it)."""
    current = to_json(fhir.read("Task", str(task.id)))
    current.update(changes)
    httpx.put(f"{fhir_base_url}/Task/{task.id}", json=current, timeout=10).raise_for_status()
    return to_json(fhir.read("Task", str(task.id)))


def test_a_cbo_cancellation_and_a_completion_notified_by_the_server_close_the_loop(
    service: Service, fhir_base_url: str, unique: str
) -> None:
    from carecoord.caremodel import terminology as t

    patient = f"ncancel-{unique}"
    enrolled = {
        "program": "CCM",
        "provider": f"Practitioner/dr-{unique}",
        "care_manager": f"Practitioner/cm-{unique}",
        "start": "2026-03-02",
    }
    need = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
    service.publish(
        [
            new_event("carecoord.patient.enrolled", patient, consented(enrolled)),
            new_event("carecoord.sdoh.need-identified", patient, need),
        ]
    )
    fhir = FhirClient(fhir_base_url)
    url = _notifications_url(service)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"}
    (first,) = wait_for(lambda: _referral_tasks(fhir, patient), 60.0, "the first referral Task")
    assert first.requester.reference.startswith("PractitionerRole/")

    # The CBO accepts, then cancels (the IG: "Requester or Referral Target" may cancel): the
    # loop goes on to the next candidate, as after a rejection.
    for status, extra in (("accepted", {}), ("cancelled", {"statusReason": {"text": "closed"}})):
        stored = _cbo_sets(fhir_base_url, fhir, first, status=status, **extra)
        answer = httpx.post(
            url, json=_id_only_notification(fhir_base_url, stored), headers=headers, timeout=30
        )
        assert answer.status_code == 200, answer.text

    def two_tasks() -> list[Any] | None:
        found = _referral_tasks(fhir, patient)
        return found if len(found) >= 2 else None

    tasks = wait_for(two_tasks, 60.0, "the next candidate after the CBO's cancellation")
    second = tasks[1]
    assert second.status == "requested"

    # The second CBO completes it, reporting what it did (Task.output resulting-activity).
    for status in ("accepted", "in-progress", "completed"):
        extra: dict[str, Any] = {}
        if status == "completed":
            extra["output"] = [
                {
                    "type": t.SDOHCC_RESULTING_ACTIVITY.concept_json(),
                    "valueCodeableConcept": {
                        "coding": [{"system": t.SNOMED, "code": "467771000124109"}]
                    },
                }
            ]
        stored = _cbo_sets(fhir_base_url, fhir, second, status=status, **extra)
        answer = httpx.post(
            url, json=_id_only_notification(fhir_base_url, stored), headers=headers, timeout=30
        )
        assert answer.status_code == 200, answer.text

    def reviewed() -> list[Any] | None:
        found = [
            tk
            for tk in fhir.search("Task", {"patient": f"Patient/{patient}"})
            if tk.get_resource_type() == "Task"
            and t.concept_has(tk.code, t.TASK_REVIEW_REFERRAL_OUTCOME)
        ]
        return found or None

    (review,) = wait_for(reviewed, 60.0, "the care manager's review Task")
    assert review.owner.reference == f"Practitioner/cm-{unique}"
    (sr,) = [
        r
        for r in fhir.search("ServiceRequest", {"subject": f"Patient/{patient}"})
        if r.get_resource_type() == "ServiceRequest"
    ]
    assert sr.status == "completed"
    fhir.close()
