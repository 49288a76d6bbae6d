"""A small FHIR-writing processor, a flaky HTTP proxy and helpers for the runtime fault tests."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from fhir.resources.R4B.basic import Basic
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.identifier import Identifier

from carecoord.core.effects import Create, Emit
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.errors import MalformedEvent
from carecoord.events.broker import TP, KafkaBroker, KafkaConnection, Message
from carecoord.events.runtime import RuntimeOptions
from carecoord.fhir.client import FhirClient

SYSTEM = "urn:carecoord:test:event"
CODE_SYSTEM = "urn:carecoord:test:run"
EVENT_TYPE = "test.write"


class BasicWriter:
    """Applies each event as one transaction creating a Basic with the event id as identifier."""

    def __init__(self, fhir: FhirClient, tag: str, delay: float = 0.0) -> None:
        self.fhir, self.tag, self.delay = fhir, tag, delay

    def process(self, event: CloudEvent) -> Sequence[Emit]:
        if event.type != EVENT_TYPE:
            raise MalformedEvent("unknown event type", event_id=event.id, event_type=event.type)
        if not isinstance(event.data.get("n"), int):
            raise MalformedEvent("invalid data: n: must be an integer", event_id=event.id)
        basic = Basic(
            code=CodeableConcept(coding=[Coding(system=CODE_SYSTEM, code=self.tag)]),
            identifier=[Identifier(system=SYSTEM, value=event.id)],
        )
        self.fhir.apply([Create(basic, SYSTEM, event.id)])
        if self.delay:
            time.sleep(self.delay)
        return [Emit("test.written", event.subject or "", {"n": event.data["n"]}, f"{event.id}/w")]


def written(fhir_base_url: str, tag: str) -> list[str]:
    """Identifier values of the Basic resources this test run created (duplicates included)."""
    with FhirClient(fhir_base_url) as fhir:
        found = fhir.search("Basic", {"code": f"{CODE_SYSTEM}|{tag}", "_count": "200"})
    return [i.value for r in found for i in (r.identifier or []) if i.system == SYSTEM]  # type: ignore[attr-defined]


def connection(bootstrap: str) -> KafkaConnection:
    return KafkaConnection(bootstrap=bootstrap, session_timeout_ms=4000, heartbeat_interval_ms=1000)


def runtime_options(bootstrap: str, tag: str, **kw: Any) -> RuntimeOptions:
    base: dict[str, Any] = {
        "topic_in": f"in-{tag}",
        "topic_out": f"out-{tag}",
        "topic_dlq": f"dlq-{tag}",
        "group_id": f"g-{tag}",
        "kafka": KafkaConnection(
            bootstrap=bootstrap,
            client_id=f"cc-{tag}",
            session_timeout_ms=4000,
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=30000,
        ),
        "retry_budget_seconds": 20.0,
        "backoff_base_seconds": 0.2,
        "backoff_max_seconds": 2.0,
        "commit_interval_seconds": 0.2,
        "shutdown_drain_seconds": 10.0,
        "max_in_flight": 4,
    }
    base.update(kw)
    return RuntimeOptions(**base)


def produce_events(bootstrap: str, topic: str, patients: Sequence[str], per_patient: int,
                   start: int = 0) -> list[str]:  # fmt: skip
    """Produce `per_patient` events for each patient, interleaved; return the event ids."""
    ids, messages = [], []
    for n in range(start, start + per_patient):
        for p in patients:
            e = new_event(EVENT_TYPE, p, {"n": n}, id=f"{topic}-{p}-{n}")
            ids.append(e.id)
            messages.append(Message(topic, e.key, e.to_json_bytes()))
    producer = KafkaBroker(connection(bootstrap)).producer()
    try:
        producer.send_all(messages, 60)
    finally:
        producer.close()
    return ids


def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(partitions))
    finally:
        consumer.close(autocommit=False)


def partitions_of(bootstrap: str, topic: str) -> set[TP]:
    broker = KafkaBroker(connection(bootstrap))
    return {r.tp for r in broker.read_topic(topic, timeout=30)}
