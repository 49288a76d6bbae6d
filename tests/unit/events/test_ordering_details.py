"""Scheduler and offset-window details: dropping every queued item (stop, or losing all
partitions), records without a key, and a record arriving behind newer ones."""

from __future__ import annotations

from carecoord.events.broker import TP, Commit, Record
from carecoord.events.ordering import KeyScheduler, OffsetWindow, WorkItem


def item(offset: int, key: bytes | None) -> WorkItem:
    return WorkItem(Record("t", 0, offset, key, b"v", leader_epoch=1), 1)


def test_drop_all_counts_the_queued_items_and_leaves_an_empty_scheduler() -> None:
    s = KeyScheduler()
    items = [item(0, b"a"), item(1, b"a"), item(2, b"b"), item(3, b"c")]
    for i in items:
        s.add(i)
    running = s.take()
    assert running is items[0]
    assert s.drop_all() == 3  # a's second, b and c; not the one in flight
    assert (s.queued, s.ready, s.take()) == (0, 0, None)
    s.release(running.key)
    later = item(4, b"b")
    s.add(later)
    assert s.queued == 1
    assert s.take() is later and s.queued == 0
    assert s.drop_all() == 0


def test_records_without_a_key_and_with_an_empty_key_share_one_order() -> None:
    s = KeyScheduler()
    keyless, empty, other = item(0, None), item(1, b""), item(2, b"p1")
    for i in (keyless, empty, other):
        s.add(i)
    assert s.take() is keyless
    assert s.take() is other  # the empty-key record waits for the keyless one
    assert s.take() is None
    s.release(keyless.key)
    assert s.take() is empty


def test_a_record_arriving_behind_newer_ones_is_not_tracked() -> None:
    w = OffsetWindow(TP("t", 0), 1)
    assert w.add(Record("t", 0, 10, b"k", b"v", leader_epoch=1))
    assert w.add(Record("t", 0, 12, b"k", b"v", leader_epoch=1))  # 11: a transaction marker
    assert not w.add(Record("t", 0, 11, b"k", b"v", leader_epoch=1))
    w.mark_done(10)
    w.mark_done(12)
    assert (w.pending, w.to_commit()) == (0, Commit(13, 1))
