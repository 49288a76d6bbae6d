"""What the runtime relies on from a broker, checked against the fake and the real one alike."""

from __future__ import annotations

import threading
import time

import pytest
from kafka.partitioner import murmur2

from carecoord.events.broker import TP, Broker, Commit, Consumer, Message, MessageTooLarge, Record


class Seen:
    """A rebalance listener that records calls (from whatever thread the client uses)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, set[TP]]] = []

    def on_assigned(self, partitions: set[TP]) -> None:
        with self.lock:
            self.calls.append(("assigned", set(partitions)))

    def on_revoked(self, partitions: set[TP]) -> None:
        with self.lock:
            self.calls.append(("revoked", set(partitions)))

    def on_lost(self, partitions: set[TP]) -> None:
        with self.lock:
            self.calls.append(("lost", set(partitions)))


def poll_until(consumer: Consumer, n: int, timeout: float = 30.0) -> list[Record]:
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out.extend(consumer.poll(0.2, 100))
    return out


def test_records_keep_key_value_headers_and_per_key_order(broker: Broker, unique: str) -> None:
    topic = f"contract-order-{unique}"
    broker.ensure_topics({topic: 3})
    producer = broker.producer()
    messages = [
        Message(topic, f"k{i % 4}".encode(), f"v{i}".encode(), (("h", f"{i}".encode()),))
        for i in range(24)
    ]
    producer.send_all(messages, 30)
    producer.close()
    consumer = broker.consumer(f"g-{unique}")
    seen = Seen()
    consumer.subscribe([topic], seen)
    try:
        records = poll_until(consumer, 24)
    finally:
        consumer.close()
    assert sorted(r.value or b"" for r in records) == sorted(m.value or b"" for m in messages)
    assert ("assigned", {TP(topic, p) for p in range(3)}) in seen.calls
    for key in {m.key for m in messages}:
        assert key is not None
        mine = [r for r in records if r.key == key]
        # Same partition as kafka-python's default partitioner; offsets ascend; order kept.
        assert {r.partition for r in mine} == {(murmur2(key) & 0x7FFFFFFF) % 3}
        assert [r.offset for r in mine] == sorted(r.offset for r in mine)
        assert [r.value for r in mine] == [m.value for m in messages if m.key == key]
        for r in mine:
            assert r.header("h") == (r.value or b"")[1:]


def test_commit_is_where_the_group_resumes(broker: Broker, unique: str) -> None:
    topic, group = f"contract-commit-{unique}", f"g-{unique}"
    broker.ensure_topics({topic: 1})
    producer = broker.producer()
    producer.send_all([Message(topic, b"k", f"{i}".encode()) for i in range(5)], 30)
    producer.close()
    first = broker.consumer(group)
    first.subscribe([topic], Seen())
    try:
        records = poll_until(first, 5)
        assert [r.offset for r in records] == [0, 1, 2, 3, 4]
        third = records[2]
        first.commit({TP(topic, 0): Commit(third.offset + 1, third.leader_epoch)})
        assert first.committed(TP(topic, 0)) == 3
    finally:
        first.close()
    second = broker.consumer(group)
    second.subscribe([topic], Seen())
    try:
        assert [r.value for r in poll_until(second, 2)] == [b"3", b"4"]
        assert second.highwater(TP(topic, 0)) == 5
    finally:
        second.close()


def test_pause_stops_delivery_and_resume_restores_it(broker: Broker, unique: str) -> None:
    topic = f"contract-pause-{unique}"
    broker.ensure_topics({topic: 1})
    producer = broker.producer()
    producer.send_all([Message(topic, b"k", b"a")], 30)
    consumer = broker.consumer(f"g-{unique}")
    consumer.subscribe([topic], Seen())
    try:
        assert [r.value for r in poll_until(consumer, 1)] == [b"a"]
        consumer.pause([TP(topic, 0)])
        producer.send_all([Message(topic, b"k", b"b")], 30)
        paused: list[Record] = []
        for _ in range(5):  # keeps polling (heartbeats) while paused, gets nothing
            paused.extend(consumer.poll(0.2, 10))
        assert paused == []
        consumer.resume([TP(topic, 0)])
        assert [r.value for r in poll_until(consumer, 1)] == [b"b"]
    finally:
        consumer.close()
        producer.close()


def test_read_topic_returns_everything_from_the_beginning(broker: Broker, unique: str) -> None:
    topic = f"contract-read-{unique}"
    broker.ensure_topics({topic: 2})
    producer = broker.producer()
    producer.send_all([Message(topic, f"k{i}".encode(), f"{i}".encode()) for i in range(6)], 30)
    producer.close()
    records = list(broker.read_topic(topic, timeout=30))
    assert sorted(r.value or b"" for r in records) == [f"{i}".encode() for i in range(6)]
    assert {r.partition for r in records} <= {0, 1}


def test_group_splits_partitions_and_takes_them_back(broker: Broker, unique: str) -> None:
    topic, group = f"contract-group-{unique}", f"g-{unique}"
    broker.ensure_topics({topic: 2})
    everything = {TP(topic, 0), TP(topic, 1)}
    first, first_seen = broker.consumer(group), Seen()
    first.subscribe([topic], first_seen)
    second = broker.consumer(group)
    try:
        deadline = time.monotonic() + 30
        while first.assignment() != everything and time.monotonic() < deadline:
            first.poll(0.2, 10)
        assert first.assignment() == everything

        second.subscribe([topic], Seen())
        stop = threading.Event()

        def keep_polling() -> None:  # the first member must poll to take part in the rebalance
            while not stop.is_set():
                first.poll(0.1, 10)

        poller = threading.Thread(target=keep_polling)
        poller.start()
        try:
            deadline = time.monotonic() + 30
            while len(second.assignment()) != 1 and time.monotonic() < deadline:
                second.poll(0.2, 10)
        finally:
            stop.set()
            poller.join()
        assert len(second.assignment()) == 1
        assert first.assignment() == everything - second.assignment()
        assert ("revoked", everything) in first_seen.calls
    finally:
        second.close()
    deadline = time.monotonic() + 30
    while first.assignment() != everything and time.monotonic() < deadline:
        first.poll(0.2, 10)
    try:
        assert first.assignment() == everything
    finally:
        first.close()


def test_a_5mb_record_fits_and_a_9mb_one_is_refused_as_too_large(
    broker: Broker, unique: str
) -> None:
    topic = f"contract-size-{unique}"
    broker.ensure_topics({topic: 1})
    producer = broker.producer()
    try:
        producer.send_all([Message(topic, b"k", b"x" * (5 * 1024 * 1024))], 30)
        with pytest.raises(MessageTooLarge):
            producer.send_all([Message(topic, b"k", b"y" * (9 * 1024 * 1024))], 30)
    finally:
        producer.close()
    assert [len(r.value or b"") for r in broker.read_topic(topic, timeout=30)] == [5 * 1024 * 1024]


def test_a_partition_kept_across_a_rebalance_resumes_at_the_fetch_position(
    broker: Broker, unique: str
) -> None:
    # kafka-python 3 keeps a kept partition's fetch position through an eager rebalance (it does
    # not go back to the committed offset): records fetched but not finished before it are not
    # fetched again. The runtime relies on the fake doing the same.
    topic, group = f"contract-kept-{unique}", f"g-{unique}"
    broker.ensure_topics({topic: 2})
    keys = {p: next(k for i in range(100) if (murmur2(k := f"k{i}".encode()) & 0x7FFFFFFF) % 2 == p)
            for p in (0, 1)}  # fmt: skip
    producer = broker.producer()
    producer.send_all([Message(topic, keys[i % 2], f"{i}".encode()) for i in range(12)], 30)
    producer.close()
    first, first_seen = broker.consumer(group), Seen()
    first.subscribe([topic], first_seen)
    second = broker.consumer(group)
    try:
        last: dict[TP, int] = {}
        deadline = time.monotonic() + 30
        while (len(last) < 2 or min(last.values()) < 1) and time.monotonic() < deadline:
            for r in first.poll(0.2, 1):
                last[r.tp] = r.offset
                if r.offset >= 1:  # two read, four left; nothing more before the rebalance
                    first.pause([r.tp])
        assert len(last) == 2 and min(last.values()) >= 1

        second.subscribe([topic], Seen())
        stop, during = threading.Event(), []

        def keep_polling() -> None:  # the first member must poll to take part in the rebalance
            while not stop.is_set():
                during.extend(first.poll(0.1, 1))

        poller = threading.Thread(target=keep_polling)
        poller.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (
                len(second.assignment()) == 1 and len(first.assignment()) == 1
            ):
                second.poll(0.2, 1)
        finally:
            stop.set()
            poller.join()
        assert during == []  # paused
        [kept] = first.assignment()
        assert ("revoked", set(last)) in first_seen.calls

        first.resume([kept])
        after = poll_until(first, 1)[0]
        assert (after.tp, after.offset) == (kept, last[kept] + 1)
    finally:
        second.close()
        first.close()


def test_a_partition_paused_mid_batch_resumes_after_another_drained(
    broker: Broker, unique: str
) -> None:
    # kafka-python 3.0 parks a paused partition's fetched records and, unhelped, never gives them
    # back once another partition's batch was drained: the resumed partition would stall.
    topic = f"contract-park-{unique}"
    broker.ensure_topics({topic: 2})
    keys = {p: next(k for i in range(100) if (murmur2(k := f"k{i}".encode()) & 0x7FFFFFFF) % 2 == p)
            for p in (0, 1)}  # fmt: skip
    producer = broker.producer()
    producer.send_all([Message(topic, keys[i % 2], f"{i}".encode()) for i in range(12)], 30)
    producer.close()
    consumer = broker.consumer(f"g-{unique}")
    consumer.subscribe([topic], Seen())
    try:
        first = _first_record(consumer)
        consumer.pause([first.tp])  # the rest of its batch is already fetched
        others = poll_until(consumer, 6)
        assert {r.tp for r in others} == {TP(topic, 1 - first.partition)}
        consumer.resume([first.tp])
        rest = poll_until(consumer, 5)
        assert [(r.tp, r.offset) for r in rest] == [(first.tp, o) for o in range(1, 6)]
    finally:
        consumer.close()


def _first_record(consumer: Consumer) -> Record:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = consumer.poll(0.2, 1)
        if got:
            return got[0]
    raise AssertionError("no record")
