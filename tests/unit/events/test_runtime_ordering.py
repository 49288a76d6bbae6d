"""Offset windows (what may be committed) and the per-key scheduler."""

from __future__ import annotations

from carecoord.errors import MalformedEvent
from carecoord.events.broker import TP, Commit, Record
from carecoord.events.ordering import KeyScheduler, OffsetWindow, WorkItem
from carecoord.events.runtime import TransientError, classify
from carecoord.fhir.errors import (
    FhirConflict,
    FhirInvalid,
    FhirNotFound,
    FhirPreconditionFailed,
    FhirRateLimited,
    FhirTransportError,
)

TP0 = TP("t", 0)


def rec(offset: int, key: bytes | None = b"k", partition: int = 0, epoch: int = 3) -> Record:
    return Record("t", partition, offset, key, b"v", leader_epoch=epoch)


def test_commit_is_highest_contiguous_done_offset_plus_one_with_its_epoch() -> None:
    w = OffsetWindow(TP0, 1)
    for o in (10, 11, 12, 14):  # 13 is a gap (e.g. a transaction marker)
        assert w.add(rec(o, epoch=o))
    w.mark_done(11)
    w.mark_done(12)
    assert w.to_commit() is None  # 10 is still pending
    w.mark_done(10)
    assert w.to_commit() == Commit(13, 12)
    w.committed = w.to_commit()
    assert w.to_commit() is None
    w.mark_done(14)
    assert w.to_commit() == Commit(15, 14)
    assert w.pending == 0


def test_refetched_offsets_are_not_tracked_twice() -> None:
    w = OffsetWindow(TP0, 1)
    assert w.add(rec(0)) and w.add(rec(1))
    assert not w.add(rec(1))
    w.mark_done(0)
    assert not w.add(rec(0))
    assert w.pending == 1


def test_one_item_per_key_in_flight_in_offset_order() -> None:
    s = KeyScheduler()
    items = [WorkItem(rec(o, key), 1) for o, key in enumerate([b"a", b"a", b"b", b"a"])]
    for i in items:
        s.add(i)
    first, second = s.take(), s.take()
    assert first is items[0] and second is items[2]
    assert s.take() is None  # a's next waits for a's first
    s.release(items[0].key)
    assert s.take() is items[1]
    s.release(items[1].key)
    assert s.take() is items[3]


def test_dropping_a_partition_forgets_only_its_queued_items() -> None:
    s = KeyScheduler()
    a0 = WorkItem(rec(0, b"a", partition=0), 1)
    a1 = WorkItem(rec(1, b"a", partition=0), 1)
    b0 = WorkItem(rec(0, b"b", partition=1), 1)
    for i in (a0, a1, b0):
        s.add(i)
    assert s.take() is a0
    assert s.drop_partition(TP0) == 1
    s.release(a0.key)
    assert s.take() is b0
    assert s.take() is None and s.queued == 0


def test_keyless_records_keep_their_order_within_a_partition() -> None:
    s = KeyScheduler()
    items = [WorkItem(rec(o, None), 1) for o in range(3)]
    for i in items:
        s.add(i)
    assert s.take() is items[0]
    assert s.take() is None


def test_classification_of_failures() -> None:
    assert not classify(TransientError("x")).permanent
    assert not classify(FhirTransportError("connect")).permanent
    rate = classify(FhirRateLimited("429", status=429, retry_after=2.0))
    assert not rate.permanent and rate.retry_after == 2.0
    assert not classify(FhirPreconditionFailed("412", status=412)).permanent
    assert not classify(FhirConflict("409", status=409)).permanent
    assert classify(FhirInvalid("422", status=422)).permanent
    assert classify(FhirNotFound("404", status=404)).permanent
    assert classify(MalformedEvent("not JSON")).permanent
    bug = classify(ZeroDivisionError("patient Jane"))
    assert not bug.permanent and "Jane" not in bug.message and bug.error_type == "ZeroDivisionError"
