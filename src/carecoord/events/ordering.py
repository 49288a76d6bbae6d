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
from dataclasses import dataclass

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

    def __init__(
        self, record: Record, incarnation: int, attempts: int = 0, tp: TP | None = None
    ) -> None:
        self.record = record
        self.incarnation = incarnation
        self.attempts = attempts
        # key_of(record), inline: keyless records share one per-partition key.
        key = record.key
        self.key: KeyId = (record.topic, record.partition, key if key is not None else b"")
        # Asked per item when it finishes; the poll loop passes the one it has (a TP per event
        # is not free).
        self.tp: TP = tp if tp is not None else record.tp

    def __repr__(self) -> str:
        r = self.record
        return f"WorkItem({r.topic}/{r.partition}@{r.offset}, attempts={self.attempts})"


class OffsetWindow:
    """Offsets of one partition assignment (`incarnation`) fetched but not yet committable.

    No object per record (one is tracked per fetched event): offsets in fetch order, their
    leader epochs, and the set of offsets done behind a gap."""

    __slots__ = (
        "_done",
        "_epochs",
        "_next",
        "_offsets",
        "committed",
        "incarnation",
        "paused",
        "tp",
    )

    def __init__(self, tp: TP, incarnation: int) -> None:
        self.tp = tp
        self.incarnation = incarnation
        self._offsets: deque[int] = deque()  # tracked, ascending
        self._epochs: dict[int, int] = {}  # tracked offset -> leader epoch
        self._done: set[int] = set()  # tracked offsets done while an earlier one is not
        self._next: Commit | None = None
        self.committed: Commit | None = None
        self.paused = False

    def add(self, record: Record) -> bool:
        """Track a fetched record; False for one already tracked or already passed (re-fetch)."""
        offset = record.offset
        if offset in self._epochs:
            return False
        if self._next is not None and offset < self._next.offset:
            return False
        offsets = self._offsets
        if offsets and offset <= offsets[-1]:
            return False
        offsets.append(offset)
        self._epochs[offset] = record.leader_epoch
        return True

    def mark_done(self, offset: int) -> None:
        epochs = self._epochs
        if offset not in epochs:
            return
        offsets = self._offsets
        if offsets[0] != offset:
            self._done.add(offset)  # a gap before it: nothing new is committable
            return
        offsets.popleft()
        epoch = epochs.pop(offset)
        done = self._done
        while done and offsets and offsets[0] in done:
            offset = offsets.popleft()
            done.discard(offset)
            epoch = epochs.pop(offset)
        self._next = Commit(offset + 1, epoch)

    @property
    def pending(self) -> int:
        """Fetched offsets not yet committable (in flight, queued, waiting, or done after a gap)."""
        return len(self._offsets)

    @property
    def lowest_pending(self) -> int | None:
        return self._offsets[0] if self._offsets else None

    def to_commit(self) -> Commit | None:
        """The commit to send now, if it moves past what was last committed."""
        if self._next is None:
            return None
        if self.committed is not None and self._next.offset <= self.committed.offset:
            return None
        return self._next


class KeyScheduler:
    """One key's items start in order, one at a time.

    A key is *owned* from the moment its head item is ready until that item is released: the
    head sits in `_ready` (the items that may start now, in the order their keys became free)
    or runs; later items of an owned key wait in `_later`. The common case, one fetched item per
    key, allocates nothing per item."""

    def __init__(self) -> None:
        self._ready: deque[WorkItem] = deque()
        self._owned: set[KeyId] = set()
        self._later: dict[KeyId, deque[WorkItem]] = {}
        self._queued = 0  # items in _ready and _later

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def busy_keys(self) -> int:
        """Keys with an item in flight (or waiting for a retry)."""
        return len(self._owned) - len(self._ready)

    @property
    def ready(self) -> int:
        """Items that may start now (each of a different key)."""
        return len(self._ready)

    def add(self, item: WorkItem) -> None:
        key = item.key
        self._queued += 1
        if key in self._owned:
            later = self._later.get(key)
            if later is None:
                self._later[key] = deque((item,))
            else:
                later.append(item)
        else:
            self._owned.add(key)
            self._ready.append(item)

    def take(self) -> WorkItem | None:
        """The next item whose key is free; its key becomes busy until `release`."""
        if not self._ready:
            return None
        self._queued -= 1
        return self._ready.popleft()

    def untake(self, item: WorkItem) -> None:
        """Give back a taken (or retry-due) item unstarted: it goes back to the head of its key's
        queue, ahead of the key's later items, and the key is free again."""
        self._owned.add(item.key)  # it is: the item was taken and not released
        self._queued += 1
        self._ready.append(item)

    def release(self, key: KeyId) -> None:
        """The key's in-flight item finished (done, dropped or dead-lettered)."""
        later = self._later.get(key)
        if later is None:
            self._owned.discard(key)
            return
        self._ready.append(later.popleft())
        if not later:
            del self._later[key]

    def drop_partition(self, tp: TP) -> int:
        """Forget the queued (not started) items of a partition; return how many."""
        topic, partition = tp
        dropped = 0
        for key in [k for k in self._later if k[1] == partition and k[0] == topic]:
            dropped += len(self._later.pop(key))
        kept: deque[WorkItem] = deque()
        for item in self._ready:
            key = item.key
            if key[1] == partition and key[0] == topic:
                self._owned.discard(key)  # not started: the key runs nothing
                dropped += 1
            else:
                kept.append(item)
        self._ready = kept
        self._queued -= dropped
        return dropped

    def drop_all(self) -> int:
        dropped = self._queued
        for item in self._ready:
            self._owned.discard(item.key)
        self._ready.clear()
        self._later.clear()
        self._queued = 0
        return dropped
