"""Per-key scheduling and per-partition offset tracking (not thread-safe: the runtime locks).

- `OffsetWindow` remembers every fetched offset of one partition assignment until it and all
  before it are done, so the commit is always the highest *contiguous* done offset + 1: a stuck
  record holds its partition's commit back without holding back later records of other keys.
- `KeyScheduler` keeps one FIFO per (topic, partition, key) and lets at most one item per key be
  in flight (or waiting for a retry), so one patient's events apply strictly in offset order while
  other patients' events run concurrently.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from carecoord.events.broker import TP, Commit, Record

KeyId = tuple[str, int, bytes]


def key_of(record: Record) -> KeyId:
    # Keyless records share one per-partition key: their relative order is kept too.
    return (record.topic, record.partition, record.key if record.key is not None else b"")


@dataclass
class Failure:
    """Why an item is being retried or dead-lettered. `message` is PHI-free."""

    error_type: str
    message: str
    permanent: bool
    retry_after: float | None = None  # seconds the server asked us to wait, if it said
    outage: str | None = None  # the unavailable dependency ("fhir", "kafka"), if that was why
    declared: bool = False  # ... and it said so itself (429, 503)


class WorkItem:
    """One fetched record on its way through the runtime (identity equality).

    A plain class, not a dataclass: one is built per event on the poll loop's hot path, so only
    what every item needs is set here; the failure bookkeeping stays at the class defaults until
    the item first fails (the key is computed once: the scheduler asks for it several times)."""

    # Wall clock (epoch seconds) of the first and last failure, for the dead letter's headers.
    first_failure: float | None = None
    last_failure: float | None = None
    first_failure_mono: float | None = None  # monotonic, for the retry budget
    # Confirmed outage seconds (all dependencies) at the first failure: excluded from the budget.
    outage_seconds_at_first_failure: float = 0.0
    failure: Failure | None = None
    # Set once the item must be dead-lettered; a retry then only re-tries the DLQ write.
    dead_letter: Failure | None = None

    def __init__(self, record: Record, incarnation: int, attempts: int = 0) -> None:
        self.record = record
        self.incarnation = incarnation
        self.attempts = attempts
        # key_of(record), inline: keyless records share one per-partition key.
        key = record.key
        self.key: KeyId = (record.topic, record.partition, key if key is not None else b"")
        self.tp: TP = record.tp  # asked per item when it finishes

    def __repr__(self) -> str:
        r = self.record
        return f"WorkItem({r.topic}/{r.partition}@{r.offset}, attempts={self.attempts})"


class _Entry:
    __slots__ = ("done", "leader_epoch", "offset")  # one per fetched record

    def __init__(self, offset: int, leader_epoch: int) -> None:
        self.offset = offset
        self.leader_epoch = leader_epoch
        self.done = False


@dataclass
class OffsetWindow:
    """Offsets of one partition assignment (`incarnation`) fetched but not yet committable."""

    tp: TP
    incarnation: int
    _entries: deque[_Entry] = field(default_factory=deque)
    _by_offset: dict[int, _Entry] = field(default_factory=dict)
    _next: Commit | None = None
    committed: Commit | None = None
    paused: bool = False

    def add(self, record: Record) -> bool:
        """Track a fetched record; False for one already tracked or already passed (re-fetch)."""
        if record.offset in self._by_offset:
            return False
        if self._next is not None and record.offset < self._next.offset:
            return False
        if self._entries and record.offset <= self._entries[-1].offset:
            return False
        entry = _Entry(record.offset, record.leader_epoch)
        self._entries.append(entry)
        self._by_offset[record.offset] = entry
        return True

    def mark_done(self, offset: int) -> None:
        entry = self._by_offset.get(offset)
        if entry is None:
            return
        entry.done = True
        entries = self._entries
        if entries[0] is not entry:
            return  # a gap before it: nothing new is committable
        by_offset = self._by_offset
        head = entry
        while entries and entries[0].done:
            head = entries.popleft()
            del by_offset[head.offset]
        self._next = Commit(head.offset + 1, head.leader_epoch)

    @property
    def pending(self) -> int:
        """Fetched offsets not yet committable (in flight, queued, waiting, or done after a gap)."""
        return len(self._entries)

    @property
    def lowest_pending(self) -> int | None:
        return self._entries[0].offset if self._entries else None

    def to_commit(self) -> Commit | None:
        """The commit to send now, if it moves past what was last committed."""
        if self._next is None:
            return None
        if self.committed is not None and self._next.offset <= self.committed.offset:
            return None
        return self._next


class KeyScheduler:
    def __init__(self) -> None:
        self._queues: dict[KeyId, deque[WorkItem]] = {}
        self._busy: set[KeyId] = set()
        self._ready: deque[KeyId] = deque()
        self._queued = 0

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def busy_keys(self) -> int:
        return len(self._busy)

    @property
    def ready(self) -> int:
        """Keys that may have an item to take now (an upper bound: some may have gone busy)."""
        return len(self._ready)

    def add(self, item: WorkItem) -> None:
        key = item.key
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(item)
        self._queued += 1
        if key not in self._busy and len(queue) == 1:
            self._ready.append(key)

    def take(self) -> WorkItem | None:
        """The next item whose key is free; its key becomes busy until `release`."""
        while self._ready:
            key = self._ready.popleft()
            queue = self._queues.get(key)
            if key in self._busy or not queue:
                continue
            item = queue.popleft()
            self._queued -= 1
            if not queue:
                del self._queues[key]
            self._busy.add(key)
            return item
        return None

    def untake(self, item: WorkItem) -> None:
        """Give back a taken (or retry-due) item unstarted: it goes back to the head of its key's
        queue, ahead of the key's later items, and the key is free again."""
        key = item.key
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.appendleft(item)
        self._queued += 1
        self._busy.discard(key)
        self._ready.append(key)

    def release(self, key: KeyId) -> None:
        """The key's in-flight item finished (done, dropped or dead-lettered)."""
        self._busy.discard(key)
        if self._queues.get(key):
            self._ready.append(key)

    def drop_partition(self, tp: TP) -> int:
        """Forget the queued (not started) items of a partition; return how many."""
        dropped = 0
        for key in [k for k in self._queues if (k[0], k[1]) == tp]:
            dropped += len(self._queues.pop(key))
        self._queued -= dropped
        return dropped

    def drop_all(self) -> int:
        dropped = self._queued
        self._queues.clear()
        self._ready.clear()
        self._queued = 0
        return dropped
