"""The clinical loop end to end on the real broker and FHIR server: an urgent question nobody
answers is escalated once by the sweeper; a provider's answer written on the FHIR server and
notified to the running service reaches the care manager as a relay Task, with every event id
stable when the notification is repeated."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from carecoord.caremodel import terminology as t
from carecoord.catalog import ClinicalOverdue
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.events.broker import KafkaBroker, KafkaConnection
from carecoord.events.dlq import list_dead_letters
from carecoord.fhir.client import FhirClient
from carecoord.fhir.models import to_json
from carecoord.handlers.clinical.loop import open_clinical_items
from carecoord.handlers.jobs.sweeper import sweep
from carecoord.service.app import Service
from carecoord.settings import load_settings
from support.enrolment import consented
from support.pipeline import Pipeline
from support.waiting import wait_for

pytestmark = pytest.mark.integration

QUESTION = "My chest feels tight since the new inhaler, should I stop it?"
ANSWER = "Stop the new inhaler, go back to the old one, and call 911 if it gets worse."
TOKEN = "clinical-loop-token"


def _clinical(fhir: FhirClient, patient: str, code: t.Code = t.TASK_CLINICAL_REVIEW) -> list[Any]:
    return [
        task
        for task in fhir.search("Task", {"patient": f"Patient/{patient}"})
        if task.get_resource_type() == "Task" and t.concept_has(task.code, code)
    ]


def _enrol_and_ask(
    publish: Callable[[list[CloudEvent]], None], unique: str, asked: datetime
) -> str:
    patient = f"clin-{unique}"
    enrolled = consented(
        {
            "program": "CCM",
            "provider": f"Practitioner/dr-{unique}",
            "care_manager": f"Practitioner/cm-{unique}",
            "start": asked.date().isoformat(),
        }
    )
    question = {
        "question": QUESTION,
        "urgency": "urgent",
        "raised_by": f"Practitioner/cm-{unique}",
    }
    publish(
        [
            new_event("carecoord.patient.enrolled", patient, enrolled, time=asked),
            new_event("carecoord.clinical.question", patient, question, time=asked),
        ]
    )
    return patient


def test_an_unanswered_urgent_question_is_escalated_once(
    pipeline_factory: Callable[..., Pipeline], unique: str
) -> None:
    config = {
        "clinical-routing": {
            "covering_provider": f"Practitioner/cover-{unique}",
            "clinical_lead": f"Practitioner/lead-{unique}",
        }
    }
    pipeline = pipeline_factory(config=config)
    # Asked a week ago: 4 practice hours (Mon-Fri 08:00-17:00 UTC by default) have passed.
    asked = datetime.now(UTC) - timedelta(days=7)
    patient = _enrol_and_ask(lambda events: pipeline.publish(*events), unique, asked)
    pipeline.wait_idle()
    (question,) = _clinical(pipeline.fhir, patient)
    assert question.priority == "stat"
    assert question.restriction.period.end < datetime.now(UTC)

    def overdue_now() -> list[CloudEvent]:
        return [
            e
            for e in sweep(pipeline.fhir, datetime.now(UTC))
            if e.type == ClinicalOverdue.event_type and e.subject == f"Patient/{patient}"
        ]

    (overdue,) = overdue_now()
    assert overdue.data["level"] == 1
    pipeline.publish(overdue)
    pipeline.wait_idle()
    tasks = _clinical(pipeline.fhir, patient)
    assert len(tasks) == 2
    (escalation,) = [x for x in tasks if x.id != question.id]
    assert escalation.owner.reference == f"Practitioner/cover-{unique}"
    assert escalation.focus.reference == f"Task/{question.id}"
    assert escalation.restriction.period.end > datetime.now(UTC)
    original = pipeline.fhir.read("Task", str(question.id))
    assert original.status == "requested"  # the original is kept, with its provider
    assert original.owner.reference == f"Practitioner/dr-{unique}"

    # The next sweep reports nothing for it; a replay of the trigger escalates nothing twice.
    assert overdue_now() == []
    pipeline.publish(overdue)
    pipeline.restart()
    pipeline.wait_idle()
    assert len(_clinical(pipeline.fhir, patient)) == 2
    escalated = [e for e in pipeline.outbound() if e.type == "carecoord.clinical.escalated"]
    mine = [e for e in escalated if e.subject == f"Patient/{patient}"]
    assert len({e.id for e in mine}) == 1
    assert mine[0].data["escalated_to"] == f"Practitioner/cover-{unique}"
    for event in pipeline.outbound():
        assert QUESTION not in event.to_json_bytes().decode()
    assert pipeline.dead_letters() == []
    items = open_clinical_items(pipeline.fhir, f"Practitioner/cm-{unique}", datetime.now(UTC))
    assert items == []  # escalated: the covering provider's deadline has not passed yet


@pytest.fixture
def service(
    kafka_bootstrap: str, fhir_base_url: str, unique: str
) -> Iterator[tuple[Service, dict[str, str]]]:
    topics = {
        "topic_in": f"cl-in-{unique}",
        "topic_out": f"cl-out-{unique}",
        "topic_dlq": f"cl-dlq-{unique}",
        "group_id": f"cl-{unique}",
    }
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        fhir_base_url=fhir_base_url,
        handlers_enabled=["enrolment", "clinical-routing"],
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
    yield svc, topics
    svc.request_stop()
    thread.join(30)


def _id_only_notification(fhir_base_url: str, task: dict[str, Any]) -> dict[str, Any]:
    ref = f"Task/{task['id']}/_history/{task['meta']['versionId']}"
    status = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/clinical"}},
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
            {"fullUrl": "urn:uuid:0b7c2f4e-3a51-4d8e-9c6f-2e1d5a7b9c03", "resource": status},
            {"fullUrl": f"{fhir_base_url}/{ref}", "request": {"method": "PUT", "url": ref}},
        ],
    }


def test_an_answer_notified_by_the_fhir_server_reaches_the_care_manager(
    service: tuple[Service, dict[str, str]],
    fhir_base_url: str,
    kafka_bootstrap: str,
    unique: str,
) -> None:
    svc, topics = service
    patient = _enrol_and_ask(svc.publish, unique, datetime.now(UTC))
    fhir = FhirClient(fhir_base_url)
    (question,) = wait_for(lambda: _clinical(fhir, patient), 60.0, "the question's Task")

    # The provider answers on the FHIR server (their EHR's inbox), with the text in Task.output.
    answered = to_json(question)
    answered["status"] = "completed"
    answered["output"] = [{"type": t.TASK_OUTPUT_ANSWER.concept_json(), "valueString": ANSWER}]
    httpx.put(f"{fhir_base_url}/Task/{question.id}", json=answered, timeout=10).raise_for_status()
    stored = to_json(fhir.read("Task", str(question.id)))
    notification = _id_only_notification(fhir_base_url, stored)
    url = f"http://127.0.0.1:{svc.notifications.port}/fhir/notifications"  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"}
    first = httpx.post(url, json=notification, headers=headers, timeout=30)
    assert first.status_code == 200, first.text

    (relay,) = wait_for(
        lambda: _clinical(fhir, patient, t.TASK_RELAY_ANSWER), 60.0, "the relay Task"
    )
    assert relay.owner.reference == f"Practitioner/cm-{unique}"
    assert relay.focus.reference == f"Task/{question.id}"
    requests = [
        r
        for r in fhir.search("CommunicationRequest", {"subject": f"Patient/{patient}"})
        if r.get_resource_type() == "CommunicationRequest"
        and any(a.reference == f"Task/{question.id}" for a in r.about or [])
    ]
    assert len(requests) == 1
    assert requests[0].recipient[0].reference == f"Patient/{patient}"

    # The server repeats the notification (same subscription, same event number): dropped as a
    # duplicate, unread and unpublished; nothing new on the server.
    again = httpx.post(url, json=notification, headers=headers, timeout=30)
    assert again.status_code == 200
    assert again.json()["issue"][0]["diagnostics"] == "duplicate: 0 event(s)"
    broker = KafkaBroker(KafkaConnection(bootstrap=kafka_bootstrap))

    def read(topic: str) -> list[CloudEvent]:
        return [CloudEvent.from_json_bytes(r.value) for r in broker.read_topic(topic, timeout=3.0)]

    def answered() -> list[CloudEvent] | None:
        found = [e for e in read(topics["topic_out"]) if e.type == "carecoord.clinical.answered"]
        return found or None

    announced = wait_for(answered, 60.0, "the answer announced")
    assert len(announced) == 1
    assert announced[0].data["task"] == f"Task/{question.id}"
    assert announced[0].data["answer"] == "text"
    notified = [e for e in read(topics["topic_in"]) if e.type == "carecoord.task.status-changed"]
    assert len(notified) == 1
    assert notified[0].data["status"] == "completed"
    for event in [*read(topics["topic_in"]), *read(topics["topic_out"])]:
        text = event.to_json_bytes().decode()
        assert ANSWER not in text
    assert len(_clinical(fhir, patient, t.TASK_RELAY_ANSWER)) == 1
    assert list(list_dead_letters(broker, topics["topic_dlq"], timeout=3.0)) == []
    items = open_clinical_items(fhir, f"Practitioner/cm-{unique}", datetime.now(UTC))
    assert [(i.kind, i.task) for i in items] == [("relay-answer", f"Task/{relay.id}")]
    fhir.close()
