"""End-to-end harness: the real runtime running the built-in handlers against the session's real
Kafka broker and real FHIR server, on topics and a consumer group of its own.

    def test_x(pipeline: Pipeline) -> None:
        pipeline.publish(new_event("carecoord.patient.enrolled", "p1", {...}))
        pipeline.wait_idle()
        plans = pipeline.fhir.search("CarePlan", {"subject": "Patient/p1"})

`pipeline_factory(config={"outreach": {"max_unanswered": 2}}, clock=...)` builds one with handler
configuration or a fixed clock. `restart()` stops the consumer (committing) and starts a new one in
the same group, e.g. to check that a replay creates nothing new.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from carecoord.core.envelope import CloudEvent
from carecoord.events.broker import TP, KafkaBroker, KafkaConnection, Message, Record
from carecoord.events.dlq import DeadLetter, list_dead_letters
from carecoord.events.producer import event_message
from carecoord.events.runtime import EventRuntime, NoopObserver, RuntimeOptions
from carecoord.fhir.client import FhirClient
from carecoord.handlers.loader import load_handlers
from carecoord.handlers.processing import HandlerProcessor


@dataclass
class Counter(NoopObserver):
    """Counts finished events (processed or dead-lettered) so tests can wait for them."""

    done: int = 0
    dead: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def on_processed(self, tp: TP, event_type: str, seconds: float) -> None:
        with self.cond:
            self.done += 1
            self.cond.notify_all()

    def on_dead_lettered(self, tp: TP, error_type: str) -> None:
        with self.cond:
            self.done += 1
            self.dead += 1
            self.cond.notify_all()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Pipeline:
    def __init__(
        self,
        bootstrap: str,
        fhir_base_url: str,
        *,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        clock: Callable[[], datetime] = _utc_now,
        partitions: int = 3,
    ) -> None:
        token = uuid.uuid4().hex[:10]
        self.options = RuntimeOptions(
            topic_in=f"e2e-in-{token}",
            topic_out=f"e2e-out-{token}",
            topic_dlq=f"e2e-dlq-{token}",
            group_id=f"e2e-{token}",
            kafka=KafkaConnection(
                bootstrap=bootstrap, session_timeout_ms=4000, heartbeat_interval_ms=1000
            ),
            create_topics_partitions=partitions,
            retry_budget_seconds=20.0,
            backoff_base_seconds=0.05,
            backoff_max_seconds=1.0,
            shutdown_drain_seconds=10.0,
        )
        self.broker = KafkaBroker(self.options.kafka)
        self.broker.ensure_topics(
            {
                self.options.topic_in: partitions,
                self.options.topic_out: 1,
                self.options.topic_dlq: 1,
            }
        )
        self.fhir = FhirClient(fhir_base_url)
        self.table = load_handlers(config=config or {})
        self.clock = clock
        self.published = 0
        self.counter = Counter()
        self._producer = self.broker.producer()
        self._runtime: EventRuntime | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.start()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        processor = HandlerProcessor(
            self.table.specs, self.fhir, config=self.table.configs, clock=self.clock
        )
        self._stop = threading.Event()
        self._runtime = EventRuntime(processor, self.options, observer=self.counter)
        self._thread = threading.Thread(
            target=self._runtime.run, args=(self._stop,), name="e2e-runtime", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            assert not self._thread.is_alive(), "runtime did not shut down within 30 s"

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._producer.close()
        self.fhir.close()

    # -- input / output --------------------------------------------------------------------

    def publish(self, *events: CloudEvent) -> None:
        self._send([event_message(e, self.options.topic_in) for e in events])

    def publish_raw(self, key: bytes | None, value: bytes | None) -> None:
        self._send([Message(topic=self.options.topic_in, key=key, value=value)])

    def _send(self, messages: list[Message]) -> None:
        self._producer.send_all(messages, timeout=30)
        self.published += len(messages)

    def wait_idle(self, timeout: float = 90.0) -> None:
        """Wait until every published event was processed or dead-lettered (at least once)."""
        deadline = time.monotonic() + timeout
        with self.counter.cond:
            while self.counter.done < self.published:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"only {self.counter.done} of {self.published} events finished "
                        f"within {timeout} s"
                    )
                self.counter.cond.wait(min(left, 0.5))

    def outbound(self) -> list[CloudEvent]:
        return [CloudEvent.from_json_bytes(r.value) for r in self._read(self.options.topic_out)]

    def dead_letters(self) -> list[DeadLetter]:
        return list(list_dead_letters(self.broker, self.options.topic_dlq, timeout=5.0))

    def _read(self, topic: str) -> Iterator[Record]:
        return self.broker.read_topic(topic, timeout=5.0)


@pytest.fixture
def pipeline_factory(kafka_bootstrap: str, fhir_base_url: str) -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []

    def make(**kwargs: Any) -> Pipeline:
        p = Pipeline(kafka_bootstrap, fhir_base_url, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def pipeline(pipeline_factory: Callable[..., Pipeline]) -> Pipeline:
    return pipeline_factory()
