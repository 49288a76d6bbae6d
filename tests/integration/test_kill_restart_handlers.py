"""Care management survives SIGKILL: `carecoord run` killed twice in the middle of a stream of
enrolments, outreach attempts and poison messages, restarted each time, leaves exactly the
expected FHIR resources, dead letters and outbound events (at-least-once delivery + idempotent
effects)."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from carecoord.caremodel import terminology as t
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.events.broker import KafkaBroker, KafkaConnection, Message
from carecoord.events.dlq import list_dead_letters
from carecoord.fhir.client import FhirClient
from carecoord.handlers.care.model import OUTREACH_REQUEST_ID
from carecoord.handlers.processing import HandlerProcessor
from carecoord.local import free_port
from support.enrolment import consented
from support.fhir_proxy import FhirProxy
from support.pipeline import Pipeline
from support.waiting import wait_for

pytestmark = pytest.mark.integration

PATIENTS = 24
PARTITIONS = 3
ESCALATION_CODE = f"{t.TASK_TYPE_SYSTEM}|{t.TASK_OUTREACH_ESCALATION.code}"
ESCALATED = "carecoord.outreach.escalated"


@dataclass
class Stream:
    """The input stream of one test and what it should leave behind."""

    messages: list[Message] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    silent: set[str] = field(default_factory=set)  # three unanswered attempts: escalated
    attempt_ids: set[str] = field(default_factory=set)
    poison: list[bytes] = field(default_factory=list)


def enrolled(patient: str, unique: str) -> CloudEvent:
    data = consented(
        {
            "program": "CCM",
            "provider": f"Practitioner/doc-{unique}",
            "care_manager": f"Practitioner/cm-{unique}",
            "start": "2024-05-03",
        }
    )
    return new_event("carecoord.patient.enrolled", patient, data, id=f"enrol-{patient}")


def attempted(patient: str, n: int, outcome: str, unique: str) -> CloudEvent:
    data = {
        "channel": "phone",
        "outcome": outcome,
        "attempted_at": f"2024-05-{10 + n:02d}T10:00:00Z",
        "by": f"Practitioner/cm-{unique}",
    }
    return new_event("carecoord.outreach.attempted", patient, data, id=f"att-{patient}-{n}")


SILENT = ["no-answer", "voicemail", "no-answer"]


def outcomes(i: int) -> list[str]:
    """Patient i's attempts: a third never answer, a third answer after one or two no-answers,
    a third answer at once."""
    if i % 3 == 0:
        return SILENT
    if i % 3 == 1:
        return ["no-answer"] * (1 + i % 2) + ["answered"]
    return ["answered"]


def build_stream(unique: str, topic: str) -> Stream:
    """Enrolments, then rounds of attempts (one per patient per round, all in the enrolment
    month), with poison messages interleaved."""
    s = Stream(patients=[f"kr-{unique}-{i}" for i in range(PATIENTS)])
    plans = {p: outcomes(i) for i, p in enumerate(s.patients)}
    s.silent = {p for p, plan in plans.items() if plan == SILENT}
    events = [enrolled(p, unique) for p in s.patients]
    for n in range(3):
        events += [attempted(p, n, plans[p][n], unique) for p in s.patients if n < len(plans[p])]
    s.attempt_ids = {e.id for e in events if e.type == "carecoord.outreach.attempted"}

    p0, p1, p2, p3, p4 = s.patients[:5]
    poison: list[tuple[str, bytes]] = [
        (p0, b"\x00\x01 not json {"),
        (p1, b'{"not": "a cloudevent"}'),
        (p2, new_event("carecoord.unknown", p2, {}, id=f"unknown-{unique}").to_json_bytes()),
        (
            p3,
            new_event(
                "carecoord.outreach.attempted",
                p3,
                {"channel": "pigeon", "outcome": "maybe", "attempted_at": "soon", "by": "x"},
                id=f"invalid-attempt-{unique}",
            ).to_json_bytes(),
        ),
        (
            p4,
            new_event(
                "carecoord.patient.enrolled", p4, {"program": "NOPE"}, id=f"invalid-enrol-{unique}"
            ).to_json_bytes(),
        ),
    ]
    s.poison = [value for _, value in poison]
    spacing = len(events) // (len(poison) + 1)
    for i, event in enumerate(events):
        s.messages.append(Message(topic, event.key, event.to_json_bytes()))
        if i % spacing == spacing - 1 and poison:
            key, value = poison.pop(0)
            s.messages.append(Message(topic, key.encode(), value))
    assert not poison
    return s


# -- the service as a subprocess ----------------------------------------------------------------


def service_env(kafka_bootstrap: str, fhir_base_url: str, unique: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECOORD_")}
    env.update(
        CARECOORD_KAFKA_BOOTSTRAP=kafka_bootstrap,
        CARECOORD_FHIR_BASE_URL=fhir_base_url,
        CARECOORD_TOPIC_IN=f"kr-in-{unique}",
        CARECOORD_TOPIC_OUT=f"kr-out-{unique}",
        CARECOORD_TOPIC_DLQ=f"kr-dlq-{unique}",
        CARECOORD_GROUP_ID=f"kr-{unique}",
        CARECOORD_HANDLERS_ENABLED="enrolment,outreach,care-tasks",
        CARECOORD_KAFKA_OPTIONS=json.dumps(
            {
                "session_timeout_ms": 4000,
                "heartbeat_interval_ms": 1000,
                "create_topics_partitions": PARTITIONS,
                "commit_interval_seconds": 0.5,
            }
        ),
        CARECOORD_HEALTH_HOST="127.0.0.1",
        CARECOORD_HEALTH_PORT=str(free_port()),
        CARECOORD_SWEEPER_INTERVAL="0",
        CARECOORD_DRAIN_TIMEOUT="10",
        CARECOORD_CONCURRENCY="4",
    )
    env["CARECOORD_HANDLERS__outreach__lead_care_manager"] = f"Practitioner/lead-{unique}"
    return env


class Service:
    """`carecoord run` subprocesses started one after another; logs appended to one file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from carecoord.cli import app; app()", "run"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"carecoord run exited early: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(40)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def service(
    kafka_bootstrap: str, fhir_base_url: str, unique: str, tmp_path: Path
) -> Iterator[Service]:
    """The service talks to the FHIR server through a proxy adding 20 ms a request, so that the
    stream takes seconds rather than a fraction of one and the kills land mid-stream."""
    proxy = FhirProxy(fhir_base_url, delay=0.02)
    svc = Service(service_env(kafka_bootstrap, proxy.base_url, unique), tmp_path / "run.log")
    yield svc
    svc.close()
    proxy.close()


# -- observing the servers ----------------------------------------------------------------------


def search(fhir: FhirClient, resource_type: str, params: dict[str, str]) -> list[Any]:
    return list(fhir.search(resource_type, params))


def attempts_recorded(fhir: FhirClient, unique: str) -> list[str]:
    """Attempt identifiers of the Communications written so far (duplicates included)."""
    found = search(fhir, "Communication", {"sender": f"Practitioner/cm-{unique}", "_count": "500"})
    return [i.value for c in found for i in (c.identifier or [])]


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS))
    finally:
        consumer.close(autocommit=False)


def publish(broker: KafkaBroker, messages: list[Message]) -> None:
    producer = broker.producer()
    try:
        producer.send_all(messages, 60)
    finally:
        producer.close()


def escalations(fhir: FhirClient, patient: str) -> list[Any]:
    return search(fhir, "Task", {"patient": f"Patient/{patient}", "code": ESCALATION_CODE})


# -- the test -----------------------------------------------------------------------------------


def test_sigkill_twice_mid_stream_leaves_exactly_the_expected_resources(
    service: Service, kafka_bootstrap: str, fhir_base_url: str, unique: str
) -> None:
    env = service.env
    topic_in, topic_out, topic_dlq = (
        env["CARECOORD_TOPIC_IN"],
        env["CARECOORD_TOPIC_OUT"],
        env["CARECOORD_TOPIC_DLQ"],
    )
    broker = KafkaBroker(
        KafkaConnection(
            bootstrap=kafka_bootstrap, session_timeout_ms=4000, heartbeat_interval_ms=1000
        )
    )
    broker.ensure_topics({topic_in: PARTITIONS, topic_out: 1, topic_dlq: 1})
    stream = build_stream(unique, topic_in)
    total = len(stream.attempt_ids)
    half = len(stream.messages) // 2
    fhir = FhirClient(fhir_base_url)
    progress: list[tuple[int, int]] = []  # (attempts recorded, offsets committed) at each kill

    def committed() -> int:
        return committed_total(kafka_bootstrap, env["CARECOORD_GROUP_ID"], topic_in)

    def progressed(attempts: int, commits: int) -> Callable[[], bool]:
        """At least `attempts` attempts recorded and more than `commits` offsets committed: the
        next run resumes from a commit in the middle of the stream, not from the start."""
        return lambda: (
            len(set(attempts_recorded(fhir, unique))) >= attempts and committed() > commits
        )

    def kill() -> None:
        service.kill()
        progress.append((len(set(attempts_recorded(fhir, unique))), committed()))

    try:
        # Run 1: the first half of the stream is waiting; killed once some attempts are recorded.
        publish(broker, stream.messages[:half])
        service.start()
        wait_for(progressed(total // 4, 0), 60, "first progress", before_each=service.check_alive)
        kill()

        # Run 2: the rest of the stream arrives while it runs; killed again mid-stream.
        service.start()
        publish(broker, stream.messages[half:])
        wait_for(
            progressed(2 * total // 3, progress[0][1]),
            60,
            "more progress",
            before_each=service.check_alive,
        )
        kill()

        # Run 3: finishes the stream, then stops gracefully.
        service.start()
        wait_for(lambda: set(attempts_recorded(fhir, unique)) >= stream.attempt_ids, 60,
                 "every attempt recorded", before_each=service.check_alive)  # fmt: skip
        wait_for(
            lambda: committed() == len(stream.messages),
            40,
            "every offset committed",
            before_each=service.check_alive,
        )
        assert service.terminate() == 0, service.log.read_text()[-3000:]
    finally:
        service.close()
    # Both kills really landed mid-stream: work was left for the next run.
    (recorded_1, committed_1), (recorded_2, committed_2) = progress
    assert recorded_1 < recorded_2 < total, progress
    assert 0 < committed_1 < committed_2 < len(stream.messages), progress

    # One Communication per distinct attempt event, no more.
    recorded = attempts_recorded(fhir, unique)
    dupes = [k for k, n in collections.Counter(recorded).items() if n > 1]
    assert dupes == [] and set(recorded) == stream.attempt_ids

    expected_outbound: dict[str, str] = {}
    for p in stream.patients:
        [plan] = search(fhir, "CarePlan", {"patient": f"Patient/{p}"})
        [request] = [
            cr
            for cr in search(fhir, "CommunicationRequest", {"patient": f"Patient/{p}"})
            if any(i.system == OUTREACH_REQUEST_ID for i in cr.identifier or [])
        ]
        found = escalations(fhir, p)
        if p in stream.silent:
            [task] = found
            assert task.status == "requested" and task.priority == "urgent"
            assert task.focus.reference == f"CommunicationRequest/{request.id}"
            assert task.basedOn[0].reference == f"CarePlan/{plan.id}"
            assert task.owner.reference == f"Practitioner/lead-{unique}"
            assert request.status == "active"  # the original request is kept
            expected_outbound[f"carecoord:outreach-escalated:CommunicationRequest/{request.id}"] = (
                f"Patient/{p}"
            )
        else:
            assert found == [], p
            assert request.status == "completed"

    # Every poison message dead-lettered with its original bytes. At-least-once: a kill between
    # the dead letter's ack and the offset commit dead-letters the same record again on restart,
    # so duplicates are allowed, but only as copies of the same source record.
    letters = list(list_dead_letters(broker, topic_dlq, timeout=10))
    assert {dl.record.value for dl in letters} == set(stream.poison)
    by_value: dict[bytes | None, set[tuple[int | None, int | None]]] = collections.defaultdict(set)
    for dl in letters:
        assert dl.error_type == "MalformedEvent" and dl.source_topic == topic_in
        by_value[dl.record.value].add((dl.source_partition, dl.source_offset))
    assert all(len(sources) == 1 for sources in by_value.values()), by_value

    # Outbound: one escalation id per silent patient (redelivery may repeat an id, never invent
    # a second one for the same request) and nothing for the others. The kills follow FHIR
    # progress, so they often land after a transaction and before its events were produced:
    # the redelivered attempt must announce the escalation then (see the next test).
    outbound = [
        CloudEvent.from_json_bytes(r.value) for r in broker.read_topic(topic_out, timeout=10)
    ]
    escalated = [e for e in outbound if e.type == ESCALATED]
    assert {e.id: e.subject for e in escalated} == expected_outbound
    fhir.close()


def test_escalation_is_emitted_again_when_redelivered_after_a_crash_before_producing(
    pipeline: Pipeline, unique: str
) -> None:
    """The kill window the test above can only hit by chance, made deterministic: the third
    unanswered attempt's FHIR transaction committed, then the process died before producing
    `carecoord.outreach.escalated` (so the offset was never committed). Its redelivery must emit
    the event (same id: downstream deduplicates), or the escalation is never announced."""
    patient = f"kr-{unique}-silent"
    enrolment, first, second, third = [enrolled(patient, unique)] + [
        attempted(patient, n, outcome, unique) for n, outcome in enumerate(SILENT)
    ]
    pipeline.publish(enrolment, first, second)
    pipeline.wait_idle()

    crashed = HandlerProcessor(pipeline.table.specs, pipeline.fhir, config=pipeline.table.configs)
    crashed.process(third)  # FHIR effects durable; the returned emits were never produced
    [task] = escalations(pipeline.fhir, patient)

    pipeline.publish(third)  # redelivered: its offset was never committed
    pipeline.wait_idle()
    assert escalations(pipeline.fhir, patient) == [task]  # still exactly one
    escalated = [e for e in pipeline.outbound() if e.type == ESCALATED]
    assert [e.id for e in escalated] == [f"carecoord:outreach-escalated:{task.focus.reference}"], (
        "the redelivered attempt did not announce the escalation"
    )
