"""An in-memory broker with the same protocols as the Kafka one, for fast tests.

Topics have partitions (records land by the same murmur2 key hash kafka-python uses), offsets,
per-group committed offsets, pause/resume, and a simple eager-rebalancing group: every member's
partitions are revoked and re-assigned round-robin when a member joins or leaves (a partition
that stays with its member keeps its fetch position and paused flag, as in kafka-python 3). Listener
callbacks run inside `poll`, as kafka-python runs them inside its poll. A message size limit and
injectable produce failures let tests exercise the runtime's failure paths.
"""

from __future__ import annotations

import itertools
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

with warnings.catch_warnings():
    # kafka-python 3 loads its protocol schemas with importlib.resources.read_text, deprecated
    # since Python 3.11: hundreds of DeprecationWarnings in a user's own test run, none theirs.
    # carecoord/__init__ imports this module, so kafka is first imported here.
    legacy = r"\w+ is deprecated\. Use files\(\) instead"  # importlib.resources' legacy API
    warnings.filterwarnings("ignore", legacy, DeprecationWarning)
    from kafka.partitioner import murmur2

from carecoord.events.broker import (
    TP,
    BrokerError,
    Commit,
    Message,
    MessageTooLarge,
    RebalanceListener,
    Record,
)


@dataclass
class _Group:
    members: list[MemoryConsumer] = field(default_factory=list)
    generation: int = 0
    known_partitions: int = 0


class InMemoryBroker:
    def __init__(
        self, default_partitions: int = 3, max_message_bytes: int = 8 * 1024 * 1024
    ) -> None:
        self.default_partitions = default_partitions
        self.max_message_bytes = max_message_bytes
        self._cond = threading.Condition(threading.RLock())
        self._topics: dict[str, list[list[Record]]] = {}
        self._committed: dict[tuple[str, TP], Commit] = {}
        self._groups: dict[str, _Group] = {}
        self._round_robin = itertools.count()
        self._fail_produces = 0

    # -- admin / test helpers ------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        with self._cond:
            if name not in self._topics:
                self._topics[name] = [[] for _ in range(partitions or self.default_partitions)]
                self._cond.notify_all()

    def ensure_topics(self, topics: Mapping[str, int]) -> None:
        for name, partitions in topics.items():
            self.create_topic(name, partitions)

    def partitions(self, topic: str) -> int:
        with self._cond:
            return len(self._topics.get(topic, []))

    def records(self, topic: str) -> list[Record]:
        """Every record of a topic, partition by partition."""
        with self._cond:
            return [r for part in self._topics.get(topic, []) for r in part]

    def committed(self, group_id: str, tp: TP) -> Commit | None:
        with self._cond:
            return self._committed.get((group_id, tp))

    def fail_next_produces(self, n: int) -> None:
        """The next `n` produce calls fail with a (transient) BrokerError."""
        with self._cond:
            self._fail_produces = n

    # -- Broker protocol -------------------------------------------------------------------------

    def consumer(self, group_id: str) -> MemoryConsumer:
        return MemoryConsumer(self, group_id)

    def producer(self) -> MemoryProducer:
        return MemoryProducer(self)

    def read_topic(self, topic: str, timeout: float = 10.0) -> Iterator[Record]:
        yield from self.records(topic)

    # -- internals -------------------------------------------------------------------------------

    def _append_all(self, messages: Sequence[Message]) -> None:
        with self._cond:
            if self._fail_produces > 0:
                self._fail_produces -= 1
                raise BrokerError("injected produce failure")
            for m in messages:
                size = len(m.value or b"") + len(m.key or b"")
                size += sum(len(k) + len(v) for k, v in m.headers)
                if size > self.max_message_bytes:
                    raise MessageTooLarge(f"record of {size} bytes over the broker limit")
            for m in messages:
                self.create_topic(m.topic)
                parts = self._topics[m.topic]
                if m.key is not None:
                    p = (murmur2(m.key) & 0x7FFFFFFF) % len(parts)
                else:
                    p = next(self._round_robin) % len(parts)
                log = parts[p]
                log.append(
                    Record(
                        topic=m.topic,
                        partition=p,
                        offset=len(log),
                        key=m.key,
                        value=m.value,
                        headers=tuple(m.headers),
                        leader_epoch=0,
                        timestamp_ms=int(time.time() * 1000),
                    )
                )
            self._cond.notify_all()

    def _join(self, member: MemoryConsumer) -> None:
        with self._cond:
            group = self._groups.setdefault(member.group_id, _Group())
            group.members.append(member)
            self._rebalance(group)

    def _leave(self, member: MemoryConsumer) -> None:
        with self._cond:
            group = self._groups.get(member.group_id)
            if group and member in group.members:
                group.members.remove(member)
                self._rebalance(group)

    def _rebalance(self, group: _Group) -> None:
        group.generation += 1
        for m in group.members:
            m._rejoin = True

    def _plan(self, group: _Group) -> dict[int, set[TP]]:
        topics = sorted({t for m in group.members for t in m._topics})
        tps = [TP(t, p) for t in topics for p in range(len(self._topics.get(t, [])))]
        plan: dict[int, set[TP]] = {id(m): set() for m in group.members}
        for i, tp in enumerate(tps):
            member = group.members[i % len(group.members)]
            if tp.topic in member._topics:
                plan[id(member)].add(tp)
        return plan


class MemoryConsumer:
    def __init__(self, broker: InMemoryBroker, group_id: str) -> None:
        self._broker = broker
        self.group_id = group_id
        self._topics: list[str] = []
        self._listener: RebalanceListener | None = None
        self._assignment: set[TP] = set()
        self._positions: dict[TP, int] = {}
        self._paused: set[TP] = set()
        self._rejoin = False
        self._closed = False

    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None:
        self._topics = list(topics)
        self._listener = listener
        self._broker._join(self)

    def _maybe_rebalance(self) -> None:
        b = self._broker
        with b._cond:
            group = b._groups[self.group_id]
            total = sum(len(b._topics.get(t, [])) for m in group.members for t in m._topics)
            if total != group.known_partitions:  # a subscribed topic appeared or grew
                group.known_partitions = total
                b._rebalance(group)
            if not self._rejoin:
                return
            self._rejoin = False
            new = b._plan(group)[id(self)]
            old = set(self._assignment)
        if self._listener is not None and old:
            self._listener.on_revoked(old)
        with b._cond:
            # Like kafka-python 3 (eager): a partition kept across the rebalance keeps its fetch
            # position and paused flag; only newly assigned ones start at the committed offset.
            self._assignment = new
            self._paused &= new
            kept = {tp: pos for tp, pos in self._positions.items() if tp in new}
            self._positions = {}
            for tp in new:
                c = b._committed.get((self.group_id, tp))
                self._positions[tp] = kept.get(tp, c.offset if c else 0)
        if self._listener is not None:
            self._listener.on_assigned(set(new))

    def poll(self, timeout: float, max_records: int) -> list[Record]:
        if self._closed:
            raise BrokerError("consumer closed")
        self._maybe_rebalance()
        b = self._broker
        deadline = time.monotonic() + timeout
        with b._cond:
            while True:
                out: list[Record] = []
                for tp in sorted(self._assignment - self._paused):
                    log = b._topics.get(tp.topic, [])[tp.partition]
                    pos = self._positions.get(tp, 0)
                    take = log[pos : pos + max_records - len(out)]
                    out.extend(take)
                    self._positions[tp] = pos + len(take)
                    if len(out) >= max_records:
                        break
                remaining = deadline - time.monotonic()
                if out or remaining <= 0 or self._rejoin:
                    return out
                b._cond.wait(remaining)

    def commit(self, offsets: Mapping[TP, Commit]) -> None:
        with self._broker._cond:
            foreign = [str(tp) for tp in offsets if tp not in self._assignment]
            if foreign:  # like Kafka: a member may commit what it owns until it rejoins
                raise BrokerError(f"commit refused: not assigned {foreign}")
            for tp, c in offsets.items():
                self._broker._committed[(self.group_id, tp)] = c

    def committed(self, tp: TP) -> int | None:
        c = self._broker.committed(self.group_id, tp)
        return c.offset if c else None

    def pause(self, partitions: Sequence[TP]) -> None:
        with self._broker._cond:
            self._paused |= set(partitions) & self._assignment

    def resume(self, partitions: Sequence[TP]) -> None:
        with self._broker._cond:
            self._paused -= set(partitions)
            self._broker._cond.notify_all()

    def paused(self) -> set[TP]:
        return set(self._paused)

    def assignment(self) -> set[TP]:
        return set(self._assignment)

    def highwater(self, tp: TP) -> int | None:
        with self._broker._cond:
            parts = self._broker._topics.get(tp.topic)
            return len(parts[tp.partition]) if parts else None

    def rebalance_pending(self) -> bool:
        return self._rejoin

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._listener is not None and self._assignment:
                self._listener.on_revoked(set(self._assignment))
            self._assignment = set()
            self._broker._leave(self)


class MemoryProducer:
    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker

    def send_all(self, messages: Sequence[Message], timeout: float) -> None:
        self._broker._append_all(messages)

    def close(self) -> None:
        pass
