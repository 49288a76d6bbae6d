"""End to end through the real broker and FHIR server: the service consuming enrolment and
outreach events (handlers enrolment, outreach, care-tasks), and `carecoord sweep` producing its
time-based triggers to the input topic."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from carecoord.cli import app
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.events.broker import KafkaBroker, KafkaConnection
from carecoord.fhir.client import FhirClient
from carecoord.service.app import Service
from carecoord.settings import load_settings
from support.enrolment import consented
from support.waiting import wait_for

pytestmark = pytest.mark.integration

HANDLERS = ["enrolment", "outreach", "care-tasks"]


@pytest.fixture
def topics(unique: str) -> dict[str, str]:
    return {
        "topic_in": f"hi-in-{unique}",
        "topic_out": f"hi-out-{unique}",
        "topic_dlq": f"hi-dlq-{unique}",
        "group_id": f"hi-{unique}",
    }


@pytest.fixture
def service(
    kafka_bootstrap: str, fhir_base_url: str, topics: dict[str, str], unique: str
) -> Iterator[Service]:
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        fhir_base_url=fhir_base_url,
        handlers_enabled=HANDLERS,
        handlers={"outreach": {"lead_care_manager": f"Practitioner/lead-{unique}"}},
        health_port=0,
        health_host="127.0.0.1",
        sweeper_interval=0,
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


def _attempt(patient: str, n: int, outcome: str) -> CloudEvent:
    body = {
        "channel": "phone",
        "outcome": outcome,
        "attempted_at": f"2024-05-{10 + n:02d}T10:00:00Z",
        "by": "Practitioner/cm",
    }
    return new_event("carecoord.outreach.attempted", patient, body, id=f"att-{patient}-{n}")


def _enrolled(patient: str, unique: str) -> CloudEvent:
    body = consented(
        {
            "program": "CCM",
            "provider": "Practitioner/doc",
            "care_manager": f"Practitioner/cm-{unique}",
            "start": "2024-05-03",
        }
    )
    return new_event("carecoord.patient.enrolled", patient, body, id=f"enrol-{patient}")


def _outbound(kafka_bootstrap: str, topic: str) -> list[CloudEvent]:
    broker = KafkaBroker(KafkaConnection(bootstrap=kafka_bootstrap))
    return [CloudEvent.from_json_bytes(r.value) for r in broker.read_topic(topic, timeout=3.0)]


def test_service_escalates_three_unanswered_attempts_once(
    service: Service, fhir_base_url: str, kafka_bootstrap: str, topics: dict[str, str], unique: str
) -> None:
    silent, reached = f"silent-{unique}", f"reached-{unique}"
    events = [_enrolled(silent, unique), _enrolled(reached, unique)]
    events += [_attempt(silent, n, "no-answer") for n in range(3)]
    events += [_attempt(reached, 0, "answered")] + [
        _attempt(reached, n, "no-answer") for n in (1, 2, 3)
    ]
    service.publish(events)
    service.publish(events)  # every event delivered twice
    fhir = FhirClient(fhir_base_url)

    def of(rtype: str, patient: str) -> list[Any]:
        return fhir.search(rtype, {"patient": f"Patient/{patient}"})

    wait_for(
        lambda: len(of("Communication", reached)) == 4, 60.0, "the answered patient's attempts"
    )
    wait_for(lambda: len(of("Communication", silent)) == 3, 60.0, "the silent patient's attempts")
    escalations = [t for t in of("Task", silent) if t.code.coding[0].code == "outreach-escalation"]
    assert len(escalations) == 1
    assert escalations[0].owner.reference == f"Practitioner/lead-{unique}"
    assert not [t for t in of("Task", reached) if t.code.coding[0].code == "outreach-escalation"]
    assert len(of("CarePlan", silent)) == 1 and len(of("CommunicationRequest", reached)) == 1
    outbound = wait_for(
        lambda: _outbound(kafka_bootstrap, topics["topic_out"]), 60.0, "outbound events"
    )
    escalated = {e.id for e in outbound if e.type == "carecoord.outreach.escalated"}
    assert len(escalated) == 1
    assert {e.subject for e in outbound} == {f"Patient/{silent}"}
    fhir.close()


def test_sweep_command_produces_due_events_to_the_input_topic(
    fhir_base_url: str, kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient = f"sweep-{unique}"
    fhir = FhirClient(fhir_base_url)
    from carecoord.handlers.processing import HandlerProcessor
    from carecoord.handlers.programs import care_tasks, enrolment, outreach

    specs = [*enrolment.HANDLERS, *outreach.HANDLERS, *care_tasks.HANDLERS]
    HandlerProcessor(specs, fhir).process(_enrolled(patient, unique))
    topic = f"hi-sweep-{unique}"
    for key, value in {
        "CARECOORD_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CARECOORD_FHIR_BASE_URL": fhir_base_url,
        "CARECOORD_TOPIC_IN": topic,
    }.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["sweep", "--now", "2024-06-02T08:00:00"])
    assert result.exit_code == 0, result.output
    [plan] = fhir.search("CarePlan", {"patient": f"Patient/{patient}"})
    due_id = f"sweep:outreach-due:CarePlan/{plan.id}:2024-06"
    produced = _outbound(kafka_bootstrap, topic)
    mine = [e for e in produced if e.subject == f"Patient/{patient}"]
    assert due_id in {e.id for e in mine}
    assert {e.type for e in mine} == {"carecoord.outreach.due", "carecoord.task.overdue"}
    fhir.close()
