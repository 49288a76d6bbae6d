"""Test processors and helpers for the runtime unit tests (in-memory broker)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from carecoord.core.effects import Emit
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.errors import MalformedEvent
from carecoord.events.broker import TP, Message, Record
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import RuntimeOptions

KNOWN = "test.step"


def event_bytes(patient: str, n: int, *, type: str = KNOWN, **data: object) -> bytes:
    return new_event(type, patient, {"n": n, **data}, id=f"{patient}-{n}").to_json_bytes()


def produce(broker: InMemoryBroker, topic: str, patient: str | None, value: bytes | None,
            headers: tuple[tuple[str, bytes], ...] = ()) -> None:  # fmt: skip
    key = patient.encode() if patient is not None else None
    broker.producer().send_all([Message(topic, key, value, headers)], 5)


def options(**kw: object) -> RuntimeOptions:
    base: dict[str, object] = {
        "topic_in": "in",
        "topic_out": "out",
        "topic_dlq": "dlq",
        "group_id": "g",
        "poll_timeout_seconds": 0.02,
        "commit_interval_seconds": 0.01,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "retry_budget_seconds": 2.0,
        "max_in_flight": 4,
        "shutdown_drain_seconds": 5.0,
    }
    base.update(kw)
    return RuntimeOptions(**base)  # type: ignore[arg-type]


@dataclass
class Recorder:
    """Records each processed (patient, n); `behaviour` may raise or block per event."""

    behaviour: Callable[[CloudEvent, int], None] | None = None
    emit: bool = False
    seen: list[tuple[str, int]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def process(self, event: CloudEvent) -> Sequence[Emit]:
        if event.type != KNOWN:
            raise MalformedEvent("unknown event type", event_id=event.id, event_type=event.type)
        if not isinstance(event.data.get("n"), int):
            raise MalformedEvent("invalid data: n: field required", event_id=event.id)
        with self.lock:
            self.calls[event.id] = self.calls.get(event.id, 0) + 1
            attempt = self.calls[event.id]
        if self.behaviour is not None:
            self.behaviour(event, attempt)
        with self.lock:
            self.seen.append((event.patient_id or "", int(event.data["n"])))
        if self.emit:
            return [Emit("test.done", event.subject or "", {"n": event.data["n"]}, f"{event.id}/d")]
        return []

    def per_patient(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for patient, n in self.seen:
            out.setdefault(patient, []).append(n)
        return out


@dataclass
class Observed:
    consumed: int = 0
    processed: int = 0
    failed: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    retries: int = 0
    max_in_flight: int = 0

    def on_consumed(self, tp: TP) -> None:
        self.consumed += 1

    def on_processed(self, tp: TP, event_type: str, seconds: float) -> None:
        self.processed += 1

    def on_failed(self, tp: TP, error_type: str) -> None:
        self.failed.append(error_type)

    def on_dead_lettered(self, tp: TP, error_type: str) -> None:
        self.dead.append(error_type)

    def on_retry(self, tp: TP) -> None:
        self.retries += 1

    def in_flight(self, n: int) -> None:
        self.max_in_flight = max(self.max_in_flight, n)

    def lag(self, tp: TP, n: int) -> None:
        pass


def committed_all(broker: InMemoryBroker, group: str, topic: str) -> bool:
    """Every partition's committed offset equals its end (everything done)."""
    for p in range(broker.partitions(topic)):
        end = len([r for r in broker.records(topic) if r.partition == p])
        c = broker.committed(group, TP(topic, p))
        if end and (c is None or c.offset != end):
            return False
    return True


def headers_of(record: Record) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


def value_json(record: Record) -> dict[str, object]:
    obj = json.loads(record.value or b"null")
    assert isinstance(obj, dict)
    return obj
