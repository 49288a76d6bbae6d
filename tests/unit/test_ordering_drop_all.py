"""Dropping every queued item (stop, or losing all partitions): the in-flight ones are not
counted, and the scheduler is as good as new afterwards."""

from __future__ import annotations

from carecoord.events.broker import Record
from carecoord.events.ordering import KeyScheduler, WorkItem


def item(offset: int, key: bytes) -> WorkItem:
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
