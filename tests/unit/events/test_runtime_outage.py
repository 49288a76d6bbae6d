"""Dependency outages in the runtime (in-memory broker): a FHIR server or broker that is down pauses
consumption instead of dead-lettering, and per-patient order survives it."""

from __future__ import annotations

import threading
import time

from carecoord.core.envelope import CloudEvent
from carecoord.errors import ConfigError
from carecoord.events import dlq
from carecoord.events.availability import Availability
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import EventRuntime
from carecoord.fhir.errors import FhirRateLimited, FhirServerError, FhirTransportError
from support.runtime import Observed, Recorder, committed_all, event_bytes, headers_of, options
from support.runtime import produce as produce_to


class Server:
    """A FHIR server that can be switched off: the processor's writes and the probe both fail."""

    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.probes: list[float] = []

    def probe(self) -> None:
        self.probes.append(time.monotonic())
        if not self.up:
            raise FhirTransportError("ConnectError talking to the FHIR server")

    def write(self, event: CloudEvent, attempt: int) -> None:
        if not self.up:
            raise FhirTransportError("ConnectError talking to the FHIR server")


def fhir_availability(server: Server, *, up: bool = True) -> Availability:
    return Availability("fhir", server.probe, up=up, check_interval=0.05, backoff_base=0.02,
                        backoff_max=0.1).start()  # fmt: skip


def run_in_thread(runtime: EventRuntime) -> threading.Thread:
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    return thread


def wait(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_an_outage_longer_than_the_retry_budget_dead_letters_nothing_and_keeps_order() -> None:
    broker = InMemoryBroker(default_partitions=2)
    server = Server()
    availability = fhir_availability(server)
    rec = Recorder(behaviour=server.write)
    obs = Observed()
    runtime = EventRuntime(
        rec, options(retry_budget_seconds=0.2), broker=broker, observer=obs,
        dependencies=[availability],
    )  # fmt: skip
    thread = run_in_thread(runtime)
    try:
        for n in range(3):
            produce_to(broker, "in", "p1", event_bytes("p1", n))
        wait(lambda: len(rec.seen) == 3)
        server.up = False
        for n in range(3, 8):
            produce_to(broker, "in", "p1", event_bytes("p1", n))
            produce_to(broker, "in", "p2", event_bytes("p2", n))
        wait(lambda: not availability.up)
        time.sleep(1.0)  # five times the retry budget
        assert runtime.ready  # still polling: the group keeps the member and its partitions
        consumer = runtime._consumer
        assert consumer is not None and consumer.paused() == consumer.assignment()  # type: ignore[attr-defined]
        assert len(rec.seen) == 3
        server.up = True
        wait(lambda: len(rec.seen) == 13)
        wait(lambda: committed_all(broker, "g", "in"))
    finally:
        runtime.request_stop()
        thread.join(10)
        availability.close()
    assert broker.records("dlq") == []
    assert rec.per_patient() == {"p1": list(range(8)), "p2": list(range(3, 8))}
    assert "FhirTransportError" in obs.failed
    assert availability.confirmed_down_seconds() >= 1.0


def test_while_the_server_is_down_no_event_is_even_tried() -> None:
    broker = InMemoryBroker(default_partitions=1)
    server = Server()
    availability = fhir_availability(server)
    rec = Recorder(behaviour=server.write)
    runtime = EventRuntime(rec, options(), broker=broker, dependencies=[availability])
    thread = run_in_thread(runtime)
    try:
        server.up = False
        produce_to(broker, "in", "p1", event_bytes("p1", 0))
        wait(lambda: not availability.up)
        tried = sum(rec.calls.values())
        for n in range(1, 20):
            produce_to(broker, "in", f"q{n}", event_bytes(f"q{n}", 0))
        time.sleep(0.5)
        # Other patients' events wait for the server instead of failing one by one.
        assert sum(rec.calls.values()) == tried
        server.up = True
        wait(lambda: len(rec.seen) == 20)
    finally:
        runtime.request_stop()
        thread.join(10)
        availability.close()
    assert broker.records("dlq") == []


def test_nothing_is_consumed_until_the_server_has_answered_once() -> None:
    broker = InMemoryBroker(default_partitions=1)
    server = Server(up=False)
    availability = fhir_availability(server, up=False)
    rec = Recorder(behaviour=server.write)
    runtime = EventRuntime(rec, options(retry_budget_seconds=0.2), broker=broker,
                           dependencies=[availability])  # fmt: skip
    for n in range(5):
        produce_to(broker, "in", "p1", event_bytes("p1", n))
    thread = run_in_thread(runtime)
    try:
        time.sleep(0.8)
        assert rec.calls == {}
        assert len(server.probes) >= 3  # probing with backoff meanwhile
        server.up = True
        wait(lambda: len(rec.seen) == 5)
    finally:
        runtime.request_stop()
        thread.join(10)
        availability.close()
    assert broker.records("dlq") == []
    assert rec.per_patient() == {"p1": [0, 1, 2, 3, 4]}


def test_a_500_on_a_server_that_answers_probes_is_still_dead_lettered_after_the_budget() -> None:
    broker = InMemoryBroker(default_partitions=1)
    server = Server()
    availability = fhir_availability(server)

    def poison(event: CloudEvent, attempt: int) -> None:
        if event.data["n"] == 0:
            raise FhirServerError("FHIR server answered 500", status=500, transient=False)

    rec = Recorder(behaviour=poison)
    runtime = EventRuntime(rec, options(retry_budget_seconds=0.3), broker=broker,
                           dependencies=[availability])  # fmt: skip
    produce_to(broker, "in", "p1", event_bytes("p1", 0))
    produce_to(broker, "in", "p1", event_bytes("p1", 1))
    try:
        assert runtime.run_until_idle(timeout=10)
    finally:
        availability.close()
    [letter] = broker.records("dlq")
    assert headers_of(letter)[dlq.H_ERROR_TYPE] == "FhirServerError"
    assert int(headers_of(letter)[dlq.H_ATTEMPTS]) > 1
    assert rec.per_patient() == {"p1": [1]}


def test_a_rate_limited_server_is_probed_no_sooner_than_its_retry_after() -> None:
    server = Server()
    availability = fhir_availability(server)
    try:
        reported = time.monotonic()
        availability.report_down("FhirRateLimited", retry_after=0.6)
        wait(lambda: availability.up)
    finally:
        availability.close()
    assert server.probes and server.probes[0] - reported >= 0.6


def test_rate_limiting_pauses_work_and_resumes_without_dead_letters() -> None:
    broker = InMemoryBroker(default_partitions=1)
    server = Server()
    availability = fhir_availability(server)

    def limited(event: CloudEvent, attempt: int) -> None:
        if attempt <= 2:
            raise FhirRateLimited("FHIR server answered 429", status=429, retry_after=0.2)

    rec = Recorder(behaviour=limited)
    runtime = EventRuntime(rec, options(retry_budget_seconds=0.1), broker=broker,
                           dependencies=[availability])  # fmt: skip
    produce_to(broker, "in", "p1", event_bytes("p1", 0))
    try:
        assert runtime.run_until_idle(timeout=10)
    finally:
        availability.close()
    assert rec.per_patient() == {"p1": [0]}
    assert broker.records("dlq") == []


def test_a_broker_outage_while_producing_emits_dead_letters_nothing() -> None:
    broker = InMemoryBroker(default_partitions=1)
    broker.create_topic("out")
    broker.create_topic("dlq")
    state = {"up": True}

    def probe() -> None:
        if not state["up"]:
            raise OSError("connection refused")

    kafka = Availability("kafka", probe, check_interval=0.05, backoff_base=0.02,
                         backoff_max=0.1).start()  # fmt: skip
    rec = Recorder(emit=True)

    def broker_down(event: CloudEvent, attempt: int) -> None:
        if attempt == 1:
            state["up"] = False
            broker.fail_next_produces(1000)  # every produce fails, dead letters included

    rec.behaviour = broker_down
    runtime = EventRuntime(rec, options(retry_budget_seconds=0.2), broker=broker,
                           dependencies=[kafka])  # fmt: skip
    produce_to(broker, "in", "p1", event_bytes("p1", 0))
    thread = run_in_thread(runtime)
    try:
        wait(lambda: not kafka.up)
        time.sleep(0.8)
        broker.fail_next_produces(0)
        state["up"] = True
        wait(lambda: len(broker.records("out")) == 1)
        wait(lambda: committed_all(broker, "g", "in"))
    finally:
        runtime.request_stop()
        thread.join(10)
        kafka.close()
    assert broker.records("dlq") == []


def test_a_key_that_is_not_the_subjects_patient_is_dead_lettered() -> None:
    broker = InMemoryBroker(default_partitions=1)
    produce_to(broker, "in", "p-OTHER", event_bytes("p-1", 0))
    produce_to(broker, "in", "p-1", event_bytes("p-1", 1))
    produce_to(broker, "in", None, event_bytes("p-1", 2))  # keyless: nothing to disagree with
    rec = Recorder()
    assert EventRuntime(rec, options(), broker=broker).run_until_idle(timeout=10)
    [letter] = broker.records("dlq")
    h = headers_of(letter)
    assert letter.key == b"p-OTHER"
    assert h[dlq.H_ERROR_TYPE] == "MalformedEvent"
    assert "Kafka key" in h[dlq.H_ERROR_MESSAGE]
    assert rec.per_patient() == {"p-1": [1, 2]}


def test_a_config_error_is_permanent() -> None:
    broker = InMemoryBroker(default_partitions=1)
    produce_to(broker, "in", "p1", event_bytes("p1", 0))

    def misconfigured(event: CloudEvent, attempt: int) -> None:
        raise ConfigError("max_unanswered must be at least 1")

    assert EventRuntime(Recorder(behaviour=misconfigured), options(), broker=broker).run_until_idle(
        timeout=10
    )
    [letter] = broker.records("dlq")
    assert headers_of(letter)[dlq.H_ERROR_TYPE] == "ConfigError"
    assert headers_of(letter)[dlq.H_ATTEMPTS] == "1"


def test_an_unconfirmed_report_is_not_counted_as_outage_time() -> None:
    server = Server()
    availability = fhir_availability(server)
    try:
        availability.report_down("FhirServerError")  # the probe will find the server up
        wait(lambda: availability.up)
        assert availability.confirmed_down_seconds() == 0.0
        server.up = False
        availability.report_down("FhirTransportError")
        time.sleep(0.3)
        server.up = True
        wait(lambda: availability.up)
    finally:
        availability.close()
    assert availability.confirmed_down_seconds() >= 0.3
    assert availability.outages == 2


def test_a_health_check_notices_an_outage_without_any_event() -> None:
    server = Server()
    changes: list[tuple[str, bool]] = []
    availability = Availability(
        "fhir", server.probe, check_interval=0.05, backoff_base=0.02,
        on_change=lambda n, up: changes.append((n, up)),
    ).start()  # fmt: skip
    try:
        server.up = False
        wait(lambda: not availability.up)
        server.up = True
        wait(lambda: availability.up)
    finally:
        availability.close()
    assert changes == [("fhir", False), ("fhir", True)]
