"""End to end on the in-memory broker: a patient's next event waits while their previous one runs,
even when it arrives after the first was taken (the scheduler must mark a running key busy)."""

from __future__ import annotations

import threading
import time

from carecoord.core.envelope import CloudEvent
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import EventRuntime
from support.runtime import Recorder, committed_all, event_bytes, options, produce


def _until(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


def test_a_patients_second_event_waits_for_the_first_even_when_it_arrives_later() -> None:
    broker = InMemoryBroker(default_partitions=1)
    started = threading.Event()
    release = threading.Event()
    running: dict[str, int] = {}
    overlaps: list[str] = []
    lock = threading.Lock()

    def block_first(event: CloudEvent, attempt: int) -> None:
        patient = event.patient_id or ""
        with lock:
            running[patient] = running.get(patient, 0) + 1
            if running[patient] > 1:
                overlaps.append(event.id)
        try:
            if event.id == "p1-0":
                started.set()
                assert release.wait(10)
        finally:
            with lock:
                running[patient] -= 1

    rec = Recorder(behaviour=block_first)
    runtime = EventRuntime(rec, options(max_in_flight=4), broker=broker)
    produce(broker, "in", "p1", event_bytes("p1", 0))
    thread = threading.Thread(target=runtime.run)
    thread.start()
    try:
        assert started.wait(5), "the first event never started"
        # Only now, while p1-0 is running, do the second event of p1 and one of p2 arrive.
        produce(broker, "in", "p1", event_bytes("p1", 1))
        produce(broker, "in", "p2", event_bytes("p2", 0))
        assert _until(lambda: ("p2", 0) in rec.seen), "another patient's event must not wait"
        time.sleep(0.1)  # many poll and dispatch rounds
        assert rec.calls.get("p1-1") is None, "p1's second event ran while its first was running"
        assert rec.per_patient().get("p1") is None
        release.set()
        assert _until(lambda: committed_all(broker, "g", "in"))
    finally:
        release.set()
        runtime.request_stop()
        thread.join(10)
    assert rec.per_patient() == {"p1": [0, 1], "p2": [0]}
    assert overlaps == []
