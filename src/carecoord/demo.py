"""`make demo`: the consumer service (carecoord's main job) on its embedded default.

Starts a real Kafka-protocol broker (tansu) and a real FHIR R4 server (sekmet) on loopback — or uses
CARECOORD_KAFKA_BOOTSTRAP / CARECOORD_FHIR_BASE_URL when set — imports the sample community
directory, runs the service, feeds it a month of care-management events for a few patients and
prints what landed on the FHIR server, what was emitted, and what was dead-lettered.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from carecoord.core.envelope import CloudEvent, new_event
from carecoord.events.broker import Message
from carecoord.events.dlq import list_dead_letters
from carecoord.fhir.client import FhirClient
from carecoord.fhir.hsds import import_directory
from carecoord.local import start_fhir, start_kafka
from carecoord.service.app import Service
from carecoord.service.logging import configure_logging
from carecoord.settings import load_settings

DIRECTORY = Path(__file__).resolve().parents[2] / "examples" / "directory" / "springfield-hsds.json"
MONTH = "2026-11"


@contextmanager
def _servers() -> Iterator[tuple[str, str]]:
    with ExitStack() as stack:
        bootstrap = os.environ.get("CARECOORD_KAFKA_BOOTSTRAP")
        fhir_url = os.environ.get("CARECOORD_FHIR_BASE_URL")
        if not bootstrap:
            kafka = start_kafka()
            stack.callback(kafka.close)
            bootstrap = kafka.bootstrap
        if not fhir_url:
            fhir = start_fhir()
            stack.callback(fhir.close)
            fhir_url = fhir.base_url
        yield bootstrap, fhir_url


def _enrolled(pid: str, care_manager: str | None) -> CloudEvent:
    data: dict[str, Any] = {
        "program": "CCM",
        "provider": "Practitioner/dr-okafor",
        "start": f"{MONTH}-02",
        "conditions": ["Condition/htn-" + pid, "Condition/t2d-" + pid],
        # CCM needs the patient's consent: without it the enrolment would be pending (draft).
        "consent": {"date": f"{MONTH}-02", "method": "verbal",
                    "recorded_by": care_manager or "Practitioner/dr-okafor"},
    }  # fmt: skip
    if care_manager:
        data["care_manager"] = care_manager
    return new_event("carecoord.patient.enrolled", pid, data, id=f"demo-enrol-{pid}")


def _attempt(pid: str, n: int, outcome: str) -> CloudEvent:
    return new_event(
        "carecoord.outreach.attempted",
        pid,
        {"channel": "phone", "outcome": outcome, "attempted_at": f"{MONTH}-0{n + 3}T15:00:00Z",
         "by": "Practitioner/cm-rivera", "duration_minutes": 4},
        id=f"demo-attempt-{pid}-{n}",
    )  # fmt: skip


def scenario(run: str) -> list[CloudEvent]:
    """One month for four patients (ids only; nothing here is real PHI)."""
    a, b, c, d = (f"{x}-{run}" for x in ("ana", "ben", "cai", "dee"))
    events = [_enrolled(a, "Practitioner/cm-rivera"), _enrolled(b, None)]
    events += [_enrolled(c, None), _enrolled(d, "Practitioner/cm-rivera")]
    events += [_attempt(a, i, "no-answer") for i in range(3)]  # -> escalation
    events += [_attempt(b, 0, "answered"), _attempt(c, 0, "wrong-number")]
    events.append(
        new_event(
            "carecoord.sdoh.need-identified",
            d,
            {"domain": "food-insecurity", "postal_code": "62701", "language": "es",
             "consent_to_contact": True},
            id=f"demo-sdoh-{d}",
        )
    )  # fmt: skip
    events.append(
        new_event(
            "carecoord.clinical.question",
            b,
            {"question": "Can I take ibuprofen with my new blood pressure pill?",
             "urgency": "urgent", "raised_by": "Patient/" + b},
            id=f"demo-question-{b}",
        )
    )  # fmt: skip
    events += [
        new_event(
            "carecoord.time.logged",
            a,
            {"program": "CCM", "minutes": minutes, "activity": "care-coordination",
             "by": "Practitioner/cm-rivera", "performed_at": f"{MONTH}-1{i}T10:00:00Z"},
            id=f"demo-time-{a}-{i}",
        )
        for i, minutes in enumerate((12, 10, 9))
    ]  # fmt: skip
    return events


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out waiting for {what}")
        time.sleep(0.25)


def _processed(service: Service) -> float:
    total = 0.0
    for metric in service.metrics.registry.collect():
        if metric.name in ("carecoord_events_processed", "carecoord_events_dead_lettered"):
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def main() -> None:
    configure_logging("WARNING", "text")  # the service's own JSON logs would drown the summary
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # metadata refreshes cancelled on close
    run = uuid.uuid4().hex[:6]
    with _servers() as (bootstrap, fhir_url):
        print(f"Kafka {bootstrap} · FHIR {fhir_url}")
        with FhirClient(fhir_url) as fhir:
            report = import_directory(fhir, json.loads(DIRECTORY.read_text()))
            print(
                f"directory: {report.imported} services imported, "
                f"{len(report.problems)} records skipped"
            )
        settings = load_settings(
            kafka_bootstrap=bootstrap,
            fhir_base_url=fhir_url,
            group_id=f"carecoord-demo-{run}",
            topic_in=f"carecoord.events.demo-{run}",
            topic_out=f"carecoord.outbound.demo-{run}",
            topic_dlq=f"carecoord.dlq.demo-{run}",
            health_port=0,
            kafka_options={"session_timeout_ms": 4000, "heartbeat_interval_ms": 1000,
                           "create_topics_partitions": 3},
            # The practice: the care manager requests referrals as their PractitionerRole there.
            handlers={"referrals": {"organization": "Organization/demo-practice",
                                    "practice_phone": "+1 555 0100"}},
        )  # fmt: skip
        service = Service(settings)
        worker = threading.Thread(target=service.run, name="carecoord-service", daemon=True)
        worker.start()
        events = scenario(run)
        service.publish(events)
        poison = Message(settings.topic_in, b"ana-" + run.encode(), b"{this is not json")
        producer = service.runtime.broker.producer()
        producer.send_all([poison], timeout=30)
        producer.close()
        _wait(lambda: _processed(service) >= len(events) + 1, 120, "the events to be processed")
        _print_results(service, settings.topic_out, settings.topic_dlq, fhir_url, run)
        service.request_stop()
        worker.join(30)


def _print_results(service: Service, out: str, dlq: str, fhir_url: str, run: str) -> None:
    broker = service.runtime.broker
    emitted = Counter(
        CloudEvent.from_json_bytes(r.value).type for r in broker.read_topic(out, timeout=5)
    )
    dead = list(list_dead_letters(broker, dlq, timeout=5))
    print("\nFHIR resources written for the demo patients:")
    with FhirClient(fhir_url) as fhir:
        for rtype, param in (
            ("CarePlan", "subject"),
            ("CommunicationRequest", "subject"),
            ("Communication", "subject"),
            ("Task", "patient"),
            ("Condition", "subject"),
            ("ServiceRequest", "subject"),
            ("ChargeItem", "subject"),
        ):  # fmt: skip  (the CareTeam is contained in the CarePlan)
            count = sum(
                len(fhir.search(rtype, {param: f"Patient/{x}-{run}"}))
                for x in ("ana", "ben", "cai", "dee")
            )
            print(f"  {rtype:<22} {count}")
    print("\nEvents emitted on the outbound topic:")
    for etype, n in sorted(emitted.items()):
        print(f"  {etype:<38} {n}")
    print("\nDead letters:")
    for d in dead:
        print(f"  offset {d.source_offset}: {d.error_type}: {d.error_message}")


if __name__ == "__main__":
    main()
