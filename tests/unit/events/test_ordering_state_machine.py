"""KeyScheduler and OffsetWindow driven the way the runtime drives them, checked against a model.

Any interleaving of arrivals (with offset gaps, and re-fetches of offsets already tracked), takes,
completions, failures given back for a retry, and partition revocations (the partition comes back
as a new incarnation and is re-fetched from its last commit) must keep:
- at most one item per key in flight, and per key the items start in offset order;
- a commit that is exactly the highest contiguous done offset + 1 of the current incarnation,
  never moving backwards, never past an offset that is not done.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from carecoord.events.broker import TP, Commit, Record
from carecoord.events.ordering import KeyId, KeyScheduler, OffsetWindow, WorkItem

PARTITIONS = (0, 1)
KEYS = (b"a", b"b", b"c", None)  # None: a keyless record (shares the partition's key)


def _epoch(offset: int) -> int:
    return offset // 4  # the leader epoch changes now and then; the commit carries the right one


class SchedulerAndWindows(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.scheduler = KeyScheduler()
        self.incarnation = dict.fromkeys(PARTITIONS, 1)
        self.windows = {p: OffsetWindow(TP("t", p), 1) for p in PARTITIONS}
        self.next_offset = dict.fromkeys(PARTITIONS, 0)
        self.fetched: dict[int, list[int]] = {p: [] for p in PARTITIONS}  # this incarnation
        self.done: dict[int, set[int]] = {p: set() for p in PARTITIONS}
        self.last_commit: dict[int, Commit | None] = dict.fromkeys(PARTITIONS)
        self.queues: dict[KeyId, list[WorkItem]] = {}  # the model: FIFO per key, offset order
        self.running: dict[KeyId, WorkItem] = {}

    # --- rules ---

    @rule(partition=st.sampled_from(PARTITIONS), key=st.sampled_from(KEYS), gap=st.integers(0, 2))
    def arrive(self, partition: int, key: bytes | None, gap: int) -> None:
        offset = self.next_offset[partition] + gap
        record = Record("t", partition, offset, key, b"v", leader_epoch=_epoch(offset))
        assert self.windows[partition].add(record)
        item = WorkItem(record, self.incarnation[partition])
        self.scheduler.add(item)
        self.queues.setdefault(item.key, []).append(item)
        self.fetched[partition].append(offset)
        self.next_offset[partition] = offset + 1

    @precondition(lambda self: any(self.fetched.values()))
    @rule(data=st.data())
    def refetch(self, data: st.DataObject) -> None:
        partition = data.draw(st.sampled_from([p for p in PARTITIONS if self.fetched[p]]))
        offset = data.draw(st.sampled_from(self.fetched[partition]))
        record = Record("t", partition, offset, b"a", b"v", leader_epoch=_epoch(offset))
        assert not self.windows[partition].add(record), "an offset was tracked twice"

    @rule()
    def take(self) -> None:
        item = self.scheduler.take()
        free = [k for k, q in self.queues.items() if q and k not in self.running]
        if not free:
            assert item is None, "took an item whose key is running (or that was dropped)"
            return
        assert item is not None, "a free key with queued items was not offered"
        assert item.key not in self.running, "two items of one key in flight"
        assert item is self.queues[item.key][0], "a key's items must start in offset order"
        self.queues[item.key].pop(0)
        self.running[item.key] = item

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        """Done, dropped or dead-lettered: the offset may be committed, the key is free."""
        key = data.draw(st.sampled_from(sorted(self.running, key=repr)))
        item = self.running.pop(key)
        partition = item.record.partition
        if item.incarnation == self.incarnation[partition]:
            self.windows[partition].mark_done(item.record.offset)
            self.done[partition].add(item.record.offset)
        self.scheduler.release(key)

    @precondition(
        lambda self: any(
            i.incarnation == self.incarnation[i.record.partition] for i in self.running.values()
        )
    )
    @rule(data=st.data())
    def give_back(self, data: st.DataObject) -> None:
        """A failure to retry later, or a batch handed back unstarted: back to the key's head."""
        current = [
            k
            for k, i in self.running.items()
            if i.incarnation == self.incarnation[i.record.partition]
        ]
        key = data.draw(st.sampled_from(sorted(current, key=repr)))
        item = self.running.pop(key)
        self.scheduler.untake(item)
        self.queues.setdefault(key, []).insert(0, item)

    @rule(partition=st.sampled_from(PARTITIONS))
    def revoke_and_reassign(self, partition: int) -> None:
        """The partition is revoked (queued items forgotten) and assigned again: a new
        incarnation re-fetches from the last commit. Items already running finish later."""
        tp = TP("t", partition)
        queued_here = sum(len(q) for k, q in self.queues.items() if (k[0], k[1]) == tp)
        assert self.scheduler.drop_partition(tp) == queued_here
        for k in [k for k in self.queues if (k[0], k[1]) == tp]:
            del self.queues[k]
        self.incarnation[partition] += 1
        window = OffsetWindow(tp, self.incarnation[partition])
        window.committed = self.last_commit[partition]
        self.windows[partition] = window
        last = self.last_commit[partition]
        self.next_offset[partition] = last.offset if last is not None else 0
        self.fetched[partition] = []
        self.done[partition] = set()

    @rule(partition=st.sampled_from(PARTITIONS))
    def commit(self, partition: int) -> None:
        window = self.windows[partition]
        got = window.to_commit()
        expected = self._expected_commit(partition)
        last = self.last_commit[partition]
        if expected is not None and last is not None and expected.offset <= last.offset:
            expected = None
        assert got == expected
        if got is not None:
            assert all(o in self.done[partition] for o in self.fetched[partition] if o < got.offset)
            assert last is None or got.offset > last.offset, "a commit went backwards"
            window.committed = got
            self.last_commit[partition] = got

    # --- invariants ---

    @invariant()
    def counts_agree(self) -> None:
        assert self.scheduler.queued == sum(len(q) for q in self.queues.values())
        assert self.scheduler.busy_keys == len(self.running)

    @invariant()
    def windows_hold_what_is_not_committable(self) -> None:
        for p in PARTITIONS:
            fetched = self.fetched[p]
            prefix = self._done_prefix(p)
            pending = fetched[prefix:]
            assert self.windows[p].pending == len(pending)
            assert self.windows[p].lowest_pending == (pending[0] if pending else None)

    # --- the model ---

    def _done_prefix(self, partition: int) -> int:
        n = 0
        for offset in self.fetched[partition]:
            if offset not in self.done[partition]:
                break
            n += 1
        return n

    def _expected_commit(self, partition: int) -> Commit | None:
        n = self._done_prefix(partition)
        if n == 0:
            return None
        offset = self.fetched[partition][n - 1]
        return Commit(offset + 1, _epoch(offset))


SchedulerAndWindows.TestCase.settings = settings(
    max_examples=200, stateful_step_count=60, deadline=None
)
test_scheduler_and_offset_windows = SchedulerAndWindows.TestCase


def test_an_item_arriving_while_its_key_runs_waits_for_release() -> None:
    s = KeyScheduler()
    first = WorkItem(Record("t", 0, 0, b"p1", b"v"), 1)
    s.add(first)
    assert s.take() is first
    second = WorkItem(Record("t", 0, 1, b"p1", b"v"), 1)
    other = WorkItem(Record("t", 0, 2, b"p2", b"v"), 1)
    s.add(second)
    s.add(other)
    assert s.take() is other, "the running key's later item must not be offered"
    assert s.take() is None
    s.release(first.key)
    assert s.take() is second
