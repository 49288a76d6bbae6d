"""The runtime's delivery semantics against the in-memory broker (milliseconds per test)."""

from __future__ import annotations

import threading
import time

import pytest

from carecoord.core.envelope import CloudEvent
from carecoord.events import dlq
from carecoord.events.broker import TP
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import EventRuntime, TransientError
from carecoord.fhir.errors import FhirInvalid, FhirPreconditionFailed, FhirServerError
from support.runtime import (
    Observed,
    Recorder,
    committed_all,
    event_bytes,
    headers_of,
    options,
    produce,
    value_json,
)


def run(runtime: EventRuntime, timeout: float = 10.0) -> None:
    assert runtime.run_until_idle(timeout=timeout), "runtime did not go idle"


def test_processes_every_event_commits_and_emits() -> None:
    broker = InMemoryBroker(default_partitions=3)
    for p in ("p1", "p2", "p3", "p4"):
        for n in range(5):
            produce(broker, "in", p, event_bytes(p, n))
    rec = Recorder(emit=True)
    run(EventRuntime(rec, options(), broker=broker))

    assert rec.per_patient() == {p: [0, 1, 2, 3, 4] for p in ("p1", "p2", "p3", "p4")}
    assert committed_all(broker, "g", "in")
    out = broker.records("out")
    assert len(out) == 20
    first = CloudEvent.from_json_bytes(out[0].value)
    assert first.id.endswith("/d") and first.type == "test.done"
    assert out[0].key == first.subject.removeprefix("Patient/").encode()  # type: ignore[union-attr]


def test_order_per_key_with_concurrency_across_keys() -> None:
    broker = InMemoryBroker(default_partitions=2)
    patients = [f"p{i}" for i in range(8)]
    for n in range(10):
        for p in patients:
            produce(broker, "in", p, event_bytes(p, n))

    def jitter(event: CloudEvent, attempt: int) -> None:
        time.sleep(0.001 * (hash(event.id) % 3))

    obs = Observed()
    rec = Recorder(behaviour=jitter)
    run(EventRuntime(rec, options(max_in_flight=6), broker=broker, observer=obs))

    assert rec.per_patient() == {p: list(range(10)) for p in patients}
    assert obs.max_in_flight > 1  # keys really ran concurrently


def test_slow_key_does_not_stall_other_keys_and_holds_its_commit() -> None:
    broker = InMemoryBroker(default_partitions=1)
    release = threading.Event()
    produce(broker, "in", "slow", event_bytes("slow", 0))
    for n in range(5):
        produce(broker, "in", "fast", event_bytes("fast", n))

    def block(event: CloudEvent, attempt: int) -> None:
        if event.patient_id == "slow":
            assert release.wait(10)

    rec = Recorder(behaviour=block)
    runtime = EventRuntime(rec, options(), broker=broker)
    t = threading.Thread(target=runtime.run)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while len(rec.per_patient().get("fast", [])) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rec.per_patient()["fast"] == [0, 1, 2, 3, 4]
        time.sleep(0.05)  # several commit intervals
        assert broker.committed("g", TP("in", 0)) is None  # offset 0 (slow) is not done
        release.set()
        deadline = time.monotonic() + 5
        while not committed_all(broker, "g", "in") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert committed_all(broker, "g", "in")
    finally:
        release.set()
        runtime.request_stop()
        t.join(10)
    assert rec.per_patient()["slow"] == [0]


def test_poison_messages_are_dead_lettered_with_original_bytes_and_stream_goes_on() -> None:
    broker = InMemoryBroker(default_partitions=1)
    poison = {
        b"\xff not json": "not JSON",
        b'{"hello": "world"}': "not a CloudEvent",
        event_bytes("p1", 1, type="carecoord.nope"): "unknown event type",
        event_bytes("p1", 2).replace(b'"n":2', b'"n":"two"'): "invalid data",
    }
    produce(broker, "in", "p1", event_bytes("p1", 0))
    for value in poison:
        produce(broker, "in", "p1", value, headers=(("trace", b"abc"),))
    produce(broker, "in", "p1", event_bytes("p1", 3))
    obs = Observed()
    rec = Recorder()
    run(EventRuntime(rec, options(), broker=broker, observer=obs))

    assert rec.per_patient() == {"p1": [0, 3]}
    assert committed_all(broker, "g", "in")
    letters = broker.records("dlq")
    assert [r.value for r in letters] == list(poison)
    for record, why in zip(letters, poison.values(), strict=True):
        h = headers_of(record)
        assert record.key == b"p1"
        assert h["trace"] == "abc"
        assert h[dlq.H_ERROR_TYPE] == "MalformedEvent"
        assert why in h[dlq.H_ERROR_MESSAGE]
        assert h[dlq.H_TOPIC] == "in" and h[dlq.H_PARTITION] == "0"
        assert h[dlq.H_ATTEMPTS] == "1"
        assert h[dlq.H_FIRST_FAILURE] and h[dlq.H_LAST_FAILURE]
    assert [headers_of(r)[dlq.H_OFFSET] for r in letters] == ["1", "2", "3", "4"]
    assert obs.dead == ["MalformedEvent"] * 4
    assert "two" not in headers_of(letters[3])[dlq.H_ERROR_MESSAGE]  # names fields, not values


def test_transient_failures_are_retried_and_processed_once() -> None:
    broker = InMemoryBroker(default_partitions=1)
    for n in range(3):
        produce(broker, "in", "p1", event_bytes("p1", n))

    def flaky(event: CloudEvent, attempt: int) -> None:
        if event.data["n"] == 1 and attempt <= 2:
            raise FhirServerError("503 from server", status=503)
        if event.data["n"] == 2 and attempt == 1:
            raise TransientError("try again")

    obs = Observed()
    rec = Recorder(behaviour=flaky)
    run(EventRuntime(rec, options(), broker=broker, observer=obs))

    assert rec.per_patient() == {"p1": [0, 1, 2]}  # order kept across retries
    assert broker.records("dlq") == []
    assert obs.retries == 3
    assert committed_all(broker, "g", "in")


def test_retry_budget_exhausted_dead_letters_with_attempts() -> None:
    broker = InMemoryBroker(default_partitions=1)
    produce(broker, "in", "p1", event_bytes("p1", 0))
    produce(broker, "in", "p1", event_bytes("p1", 1))

    def down(event: CloudEvent, attempt: int) -> None:
        if event.data["n"] == 0:
            raise FhirServerError("503", status=503)

    rec = Recorder(behaviour=down)
    run(EventRuntime(rec, options(retry_budget_seconds=0.3), broker=broker))

    assert rec.per_patient() == {"p1": [1]}
    [letter] = broker.records("dlq")
    h = headers_of(letter)
    assert h[dlq.H_ERROR_TYPE] == "FhirServerError"
    assert int(h[dlq.H_ATTEMPTS]) > 1
    assert h[dlq.H_FIRST_FAILURE] < h[dlq.H_LAST_FAILURE]
    assert committed_all(broker, "g", "in")


def test_unexpected_exception_retried_then_dead_lettered_without_its_text() -> None:
    broker = InMemoryBroker(default_partitions=1)
    produce(broker, "in", "p1", event_bytes("p1", 0))

    def bug(event: CloudEvent, attempt: int) -> None:
        raise KeyError("Jane Doe 555-0100")

    rec = Recorder(behaviour=bug)
    run(EventRuntime(rec, options(retry_budget_seconds=0.2), broker=broker))

    [letter] = broker.records("dlq")
    h = headers_of(letter)
    assert h[dlq.H_ERROR_TYPE] == "KeyError"
    assert "Jane" not in h[dlq.H_ERROR_MESSAGE]
    assert int(h[dlq.H_ATTEMPTS]) > 1


def test_fhir_4xx_dead_letters_at_once_but_412_is_retried() -> None:
    broker = InMemoryBroker(default_partitions=1)
    produce(broker, "in", "p1", event_bytes("p1", 0))
    produce(broker, "in", "p2", event_bytes("p2", 0))

    def fhir(event: CloudEvent, attempt: int) -> None:
        if event.patient_id == "p1":
            raise FhirInvalid("422 on transaction", status=422)
        if attempt == 1:
            raise FhirPreconditionFailed("412", status=412)

    rec = Recorder(behaviour=fhir)
    run(EventRuntime(rec, options(), broker=broker))

    [letter] = broker.records("dlq")
    assert letter.key == b"p1"
    assert headers_of(letter)[dlq.H_ATTEMPTS] == "1"
    assert rec.per_patient() == {"p2": [0]}


def test_dead_letter_write_failure_is_retried_never_dropped() -> None:
    broker = InMemoryBroker(default_partitions=1)
    produce(broker, "in", "p1", b"not json")
    broker.fail_next_produces(3)
    run(EventRuntime(Recorder(), options(), broker=broker))

    assert [r.value for r in broker.records("dlq")] == [b"not json"]
    assert committed_all(broker, "g", "in")


def test_oversized_poison_is_dead_lettered_truncated_with_headers() -> None:
    broker = InMemoryBroker(default_partitions=1, max_message_bytes=6 * 1024 * 1024)
    big = b'{"x": "' + b"a" * (5 * 1024 * 1024) + b'"'  # 5 MB, not valid JSON
    produce(broker, "in", "p1", big)
    produce(broker, "in", "p1", event_bytes("p1", 0))
    broker.max_message_bytes = 1024 * 1024  # the DLQ write is refused at full size
    rec = Recorder()
    run(EventRuntime(rec, options(), broker=broker))

    [letter] = broker.records("dlq")
    h = headers_of(letter)
    assert h[dlq.H_TRUNCATED] == str(len(big))
    assert letter.value is not None and big.startswith(letter.value) and len(letter.value) > 0
    assert rec.per_patient() == {"p1": [0]}
    assert committed_all(broker, "g", "in")


def test_emit_produce_failure_reprocesses_and_emits() -> None:
    broker = InMemoryBroker(default_partitions=1)
    produce(broker, "in", "p1", event_bytes("p1", 0))
    broker.create_topic("out")
    broker.create_topic("dlq")
    rec = Recorder(emit=True)

    def fail_first(event: CloudEvent, attempt: int) -> None:
        if attempt == 1:
            broker.fail_next_produces(1)  # the emit after this processing fails

    rec.behaviour = fail_first
    run(EventRuntime(rec, options(), broker=broker))

    assert rec.calls == {"p1-0": 2}
    assert [value_json(r)["id"] for r in broker.records("out")] == ["p1-0/d"]
    assert broker.records("dlq") == []


def test_backpressure_pauses_the_stuck_partition_and_resumes() -> None:
    broker = InMemoryBroker(default_partitions=1)
    release = threading.Event()
    produce(broker, "in", "stuck", event_bytes("stuck", 0))
    for n in range(20):
        produce(broker, "in", f"k{n}", event_bytes(f"k{n}", 0))

    def block(event: CloudEvent, attempt: int) -> None:
        if event.patient_id == "stuck":
            assert release.wait(10)

    rec = Recorder(behaviour=block)
    runtime = EventRuntime(
        rec, options(max_in_flight_per_partition=5, max_poll_records=3), broker=broker
    )
    t = threading.Thread(target=runtime.run)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while runtime._consumer is None or not runtime._consumer.paused():  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "partition never paused"
            time.sleep(0.01)
        seen = len(rec.seen)
        assert seen < 20  # stopped fetching at the window limit
        release.set()
        deadline = time.monotonic() + 5
        while not committed_all(broker, "g", "in"):
            assert time.monotonic() < deadline, "did not resume"
            time.sleep(0.01)
    finally:
        release.set()
        runtime.request_stop()
        t.join(10)
    assert len(rec.seen) == 21


def test_graceful_stop_drains_in_flight_and_leaves_queued_for_redelivery() -> None:
    broker = InMemoryBroker(default_partitions=1)
    started = threading.Event()
    for n in range(3):
        produce(broker, "in", "p1", event_bytes("p1", n))

    def slow_first(event: CloudEvent, attempt: int) -> None:
        if event.data["n"] == 0:
            started.set()
            time.sleep(0.2)

    rec = Recorder(behaviour=slow_first)
    runtime = EventRuntime(rec, options(), broker=broker)
    t = threading.Thread(target=runtime.run)
    t.start()
    assert started.wait(5)
    runtime.request_stop()
    t.join(10)
    assert not t.is_alive()
    assert rec.per_patient() == {"p1": [0]}
    c = broker.committed("g", TP("in", 0))
    assert c is not None and c.offset == 1

    rec2 = Recorder()
    run(EventRuntime(rec2, options(), broker=broker))
    assert rec2.per_patient() == {"p1": [1, 2]}


def test_second_member_joining_and_leaving_loses_nothing() -> None:
    broker = InMemoryBroker(default_partitions=4)
    patients = [f"p{i}" for i in range(12)]
    stop = threading.Event()
    rec_a, rec_b = Recorder(), Recorder()
    a = EventRuntime(rec_a, options(), broker=broker)
    ta = threading.Thread(target=a.run, args=(stop,))
    ta.start()
    try:
        for n in range(6):
            for p in patients:
                produce(broker, "in", p, event_bytes(p, n))
            if n == 2:
                b = EventRuntime(rec_b, options(), broker=broker)
                tb = threading.Thread(target=b.run)
                tb.start()
                time.sleep(0.1)
            if n == 4:
                b.request_stop()
                tb.join(10)
        deadline = time.monotonic() + 10
        while not committed_all(broker, "g", "in"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        stop.set()
        ta.join(10)
    assert rec_b.seen, "the second member got partitions"
    done = set(rec_a.seen) | set(rec_b.seen)
    assert done == {(p, n) for p in patients for n in range(6)}
    for rec in (rec_a, rec_b):  # each member applied each key in order
        for ns in rec.per_patient().values():
            assert ns == sorted(ns)


def test_ready_after_assignment_and_not_after_stop() -> None:
    broker = InMemoryBroker(default_partitions=1)
    broker.create_topic("in")
    runtime = EventRuntime(Recorder(), options(), broker=broker)
    assert not runtime.ready
    t = threading.Thread(target=runtime.run)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while not runtime.ready:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        runtime.request_stop()
        t.join(10)
    assert not runtime.ready


@pytest.mark.parametrize("error_type", [None, "MalformedEvent"])
def test_dead_letters_list_and_replay(error_type: str | None) -> None:
    broker = InMemoryBroker(default_partitions=1)
    produce(broker, "in", "p1", b"garbage", headers=(("trace", b"t1"),))
    produce(broker, "in", "p2", event_bytes("p2", 0))
    run(EventRuntime(Recorder(), options(), broker=broker))

    [letter] = list(dlq.list_dead_letters(broker, "dlq"))
    assert (letter.source_topic, letter.source_offset, letter.error_type) == (
        "in",
        0,
        "MalformedEvent",
    )
    assert letter.attempts == 1 and not letter.truncated
    assert letter.event_id is None

    none = dlq.replay(broker, dlq_topic="dlq", error_type="FhirInvalid")
    assert none.replayed == []
    result = dlq.replay(broker, dlq_topic="dlq", error_type=error_type, start_offset=0)
    assert [r.offset for r in result.replayed] == [0]
    replayed = broker.records("in")[-1]
    assert replayed.key == b"p1" and replayed.value == b"garbage"
    h = headers_of(replayed)
    assert h["trace"] == "t1" and h[dlq.H_REPLAY] == "dlq/0/0"
    assert not any(k.startswith(dlq.PREFIX) for k in h)
