"""Rebalances that leave a partition with the same member (in-memory broker, like kafka-python 3:
the partition keeps its fetch position and paused flag, it does not go back to the commit)."""

from __future__ import annotations

import threading
import time

from carecoord.core.envelope import CloudEvent
from carecoord.events.broker import TP
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import EventRuntime
from support.runtime import Recorder, committed_all, event_bytes, options, produce


class Ignore:
    def on_assigned(self, partitions: set[TP]) -> None:
        pass

    def on_revoked(self, partitions: set[TP]) -> None:
        pass

    def on_lost(self, partitions: set[TP]) -> None:
        pass


def rebalanced(runtime: EventRuntime) -> None:
    deadline = time.monotonic() + 5
    while runtime._consumer is None or runtime._consumer.rebalance_pending():
        assert time.monotonic() < deadline, "the runtime did not take part in the rebalance"
        time.sleep(0.01)


def another_member_joins_and_leaves(broker: InMemoryBroker, runtime: EventRuntime) -> None:
    """Two rebalances; with one partition it stays with `runtime`'s member both times."""
    other = broker.consumer("g")
    other.subscribe(["in"], Ignore())
    rebalanced(runtime)
    other.close()
    rebalanced(runtime)


def wait_committed(broker: InMemoryBroker) -> None:
    deadline = time.monotonic() + 5
    while not committed_all(broker, "g", "in"):
        assert time.monotonic() < deadline, "not everything was committed"
        time.sleep(0.01)


def test_events_queued_during_a_rebalance_are_processed_when_the_partition_stays() -> None:
    broker = InMemoryBroker(default_partitions=1)
    for n in range(3):
        produce(broker, "in", "p1", event_bytes("p1", n))
    started, release = threading.Event(), threading.Event()

    def first_blocks(event: CloudEvent, attempt: int) -> None:
        if event.data["n"] == 0 and attempt == 1:
            started.set()
            assert release.wait(10)

    rec = Recorder(behaviour=first_blocks)
    runtime = EventRuntime(rec, options(rebalance_drain_seconds=0.05), broker=broker)
    t = threading.Thread(target=runtime.run)
    t.start()
    try:
        assert started.wait(5)  # p1-0 in flight, p1-1 and p1-2 fetched and queued behind it
        another_member_joins_and_leaves(broker, runtime)
        produce(broker, "in", "p1", event_bytes("p1", 3))
        release.set()
        wait_committed(broker)
    finally:
        release.set()
        runtime.request_stop()
        t.join(10)
    assert rec.per_patient() == {"p1": [0, 1, 2, 3]}


def test_a_partition_paused_by_backpressure_resumes_after_a_rebalance_keeps_it() -> None:
    broker = InMemoryBroker(default_partitions=1)
    produce(broker, "in", "stuck", event_bytes("stuck", 0))
    for n in range(12):
        produce(broker, "in", f"k{n}", event_bytes(f"k{n}", 0))
    release = threading.Event()

    def stuck_blocks(event: CloudEvent, attempt: int) -> None:
        if event.patient_id == "stuck":
            assert release.wait(10)

    rec = Recorder(behaviour=stuck_blocks)
    runtime = EventRuntime(
        rec,
        options(max_in_flight_per_partition=4, max_poll_records=2, rebalance_drain_seconds=0.05),
        broker=broker,
    )
    t = threading.Thread(target=runtime.run)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while runtime._consumer is None or not runtime._consumer.paused():  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "partition never paused"
            time.sleep(0.01)
        another_member_joins_and_leaves(broker, runtime)
        release.set()
        wait_committed(broker)
    finally:
        release.set()
        runtime.request_stop()
        t.join(10)
    assert sorted(rec.per_patient()) == sorted(["stuck"] + [f"k{n}" for n in range(12)])
