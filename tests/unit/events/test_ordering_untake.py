"""An item given back unstarted (KeyScheduler.untake) goes back ahead of its key's later items,
which are kept; without a thread, so the check does not depend on timing."""

from __future__ import annotations

from carecoord.events.broker import Record
from carecoord.events.ordering import KeyScheduler, WorkItem


def item(offset: int, key: bytes) -> WorkItem:
    return WorkItem(Record("t", 0, offset, key, b"v", leader_epoch=1), 1)


def test_an_untaken_item_runs_first_and_its_keys_later_items_follow() -> None:
    s = KeyScheduler()
    first, second, other = item(0, b"a"), item(1, b"a"), item(2, b"b")
    for i in (first, second, other):
        s.add(i)
    assert s.take() is first
    s.untake(first)  # e.g. a rebalance before it started
    assert s.queued == 3
    taken = [s.take(), s.take()]
    assert first in taken and other in taken  # first before a's later item
    assert s.take() is None  # a is busy again
    s.release(first.key)
    assert s.take() is second


def test_an_untaken_item_whose_queue_is_gone_is_queued_again() -> None:
    s = KeyScheduler()
    only = item(0, b"a")
    s.add(only)
    assert s.take() is only and s.queued == 0
    s.untake(only)
    assert s.queued == 1 and s.take() is only
