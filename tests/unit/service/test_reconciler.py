"""The reconciling poller against a paged fake FHIR server: windows from the server's time,
paging (also while the server changes), dedup with notifications, restarts, outages, the
interval rule and the trigger."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import identifier_system
from carecoord.core.envelope import CloudEvent
from carecoord.errors import ConfigError
from carecoord.fhir.errors import FhirTransportError
from carecoord.handlers.notifications.seen import SeenVersions
from carecoord.handlers.notifications.windows import FollowedQuery, instant
from carecoord.service.metrics import ReconcileMetrics
from carecoord.service.reconcile import MemoryCursors, Reconciler
from carecoord.settings import load_settings

TASKS = (FollowedQuery("tasks", "Task"),)


class PagedServer:
    """Tasks with versions and server-side lastUpdated; `_lastUpdated=ge`, `_sort`, `_count`,
    offset paging like sekmet's next links; the server's clock is its own (2020, not ours)."""

    def __init__(self) -> None:
        self.now = datetime(2020, 5, 1, 12, 0, tzinfo=UTC)
        self.tasks: dict[str, dict[str, Any]] = {}
        self.searches: list[list[tuple[str, str]]] = []
        self.between_pages: Callable[[], None] | None = None
        self.down = False

    def write(self, tid: str, status: str = "requested") -> dict[str, Any]:
        self.now += timedelta(seconds=1)
        old = self.tasks.get(tid)
        version = str(int(old["meta"]["versionId"]) + 1) if old else "1"
        self.tasks[tid] = {
            "resourceType": "Task",
            "id": tid,
            "meta": {"versionId": version, "lastUpdated": instant(self.now)},
            "status": status,
            "intent": "order",
            "code": {"coding": [t.TASK_FULFILL.json()]},
            "identifier": [{"system": identifier_system("referral-task"), "value": tid}],
            "for": {"reference": "Patient/p1"},
        }
        return self.tasks[tid]

    def search(
        self, resource_type: str, params: Sequence[tuple[str, str]]
    ) -> Iterator[Mapping[str, Any]]:
        if self.down:
            raise FhirTransportError("down", reached_server=False)
        self.searches.append(list(params))
        p = dict(params)
        found = list(self.tasks.values())
        if "_lastUpdated" in p:
            since = datetime.fromisoformat(p["_lastUpdated"].removeprefix("ge"))
            found = [r for r in found if datetime.fromisoformat(r["meta"]["lastUpdated"]) >= since]
        descending = p.get("_sort") == "-_lastUpdated"
        count, offset = int(p.get("_count", "20")), 0
        while True:
            matches = sorted(
                (
                    r
                    for r in self.tasks.values()
                    if r in found or r["id"] in {f["id"] for f in found}
                ),
                key=lambda r: r["meta"]["lastUpdated"],
                reverse=descending,
            )
            if "_lastUpdated" in p:
                matches = [
                    r for r in matches
                    if datetime.fromisoformat(r["meta"]["lastUpdated"]) >= since
                ]  # fmt: skip
            page = matches[offset : offset + count]
            self.now += timedelta(milliseconds=1)
            yield {
                "resourceType": "Bundle",
                "meta": {"lastUpdated": instant(self.now)},
                "entry": [{"resource": dict(r), "search": {"mode": "match"}} for r in page],
            }
            offset += count
            if offset >= len(matches) or descending:
                return
            if self.between_pages is not None:
                self.between_pages()


class Published:
    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.fail = False

    def __call__(self, events: Sequence[CloudEvent]) -> None:
        if self.fail:
            raise OSError("broker down")
        self.events.extend(events)

    def statuses(self) -> list[tuple[str, str]]:
        return [(e.data["task"], e.data["status"]) for e in self.events]


def reconciler(
    server: PagedServer,
    published: Published,
    cursors: MemoryCursors,
    *,
    seen: SeenVersions | None = None,
    metrics: ReconcileMetrics | None = None,
    page_size: int = 100,
) -> Reconciler:
    return Reconciler(
        server.search,
        published,
        cursors,
        seen=seen,
        queries=TASKS,
        page_size=page_size,
        overlap=60,
        metrics=metrics,
        clock=lambda: server.now,
    )


def test_the_first_poll_starts_at_the_servers_newest_change_and_later_changes_are_found() -> None:
    server, published, cursors = PagedServer(), Published(), MemoryCursors()
    server.write("t1", "completed")  # before carecoord's first poll: history, not replayed
    poller = reconciler(server, published, cursors)
    poller.poll_once()
    assert published.events == []
    assert (
        cursors.cursors["tasks"].since
        == datetime.fromisoformat(server.tasks["t1"]["meta"]["lastUpdated"])
        or cursors.cursors["tasks"].since is not None
    )
    server.write("t2", "accepted")
    report = poller.poll_once()
    assert published.statuses() == [("Task/t2", "accepted")]
    assert report.queries[0].poller_only == 1
    # The next window overlaps the last one: t2 is read again and not published again.
    poller.poll_once()
    assert len(published.events) == 1
    window = dict(server.searches[-1])
    assert window["_lastUpdated"].startswith("ge2020-05-01T")  # the server's time, not ours
    assert window["_sort"] == "_lastUpdated"


def test_every_page_is_read_and_the_cursor_ends_at_the_last_change() -> None:
    server, published, cursors = PagedServer(), Published(), MemoryCursors()
    poller = reconciler(server, published, cursors, page_size=2)
    poller.poll_once()
    for n in range(5):
        server.write(f"t{n}", "completed")
    poller.poll_once()
    assert sorted(published.statuses()) == [(f"Task/t{n}", "completed") for n in range(5)]
    last = datetime.fromisoformat(server.tasks["t4"]["meta"]["lastUpdated"])
    assert cursors.cursors["tasks"].since is not None
    assert cursors.cursors["tasks"].since >= last


def test_a_change_while_paging_skips_nothing() -> None:
    server, published, cursors = PagedServer(), Published(), MemoryCursors()
    poller = reconciler(server, published, cursors, page_size=2)
    poller.poll_once()
    for n in range(6):
        server.write(f"t{n}", "accepted")

    def t0_completes() -> None:  # t0 moves to the end: offset paging would skip t2
        server.between_pages = None
        server.write("t0", "completed")

    server.between_pages = t0_completes
    poller.poll_once()
    found = set(published.statuses())
    assert {(f"Task/t{n}", "accepted") for n in range(1, 6)} <= found
    assert ("Task/t0", "completed") in found


def test_a_version_a_notification_published_is_not_published_again() -> None:
    server, published, cursors = PagedServer(), Published(), MemoryCursors()
    seen = SeenVersions()
    metrics = ReconcileMetrics(CollectorRegistry())
    poller = reconciler(server, published, cursors, seen=seen, metrics=metrics)
    poller.poll_once()
    notified = server.write("t1", "completed")
    seen.remember([f"Task/t1/_history/{notified['meta']['versionId']}"])  # the endpoint did it
    server.write("t2", "completed")
    poller.poll_once()
    assert published.statuses() == [("Task/t2", "completed")]
    assert metrics.poller_only.labels("Task")._value.get() == 1
    assert metrics.polls._value.get() == 2
    assert "Task/t2/_history/1" in seen  # and a later notification of t2 is skipped


def test_a_restarted_poller_misses_nothing_and_repeats_nothing() -> None:
    server, published, cursors = PagedServer(), Published(), MemoryCursors()
    first = reconciler(server, published, cursors)
    first.poll_once()
    server.write("t1", "accepted")
    first.poll_once()
    server.write("t2", "completed")  # while carecoord is down
    again = reconciler(server, published, cursors)  # new process: no SeenVersions left
    again.poll_once()
    again.poll_once()
    assert published.statuses() == [("Task/t1", "accepted"), ("Task/t2", "completed")]


def test_an_outage_keeps_the_cursor_and_the_next_poll_catches_up() -> None:
    server, published, cursors = PagedServer(), Published(), MemoryCursors()
    metrics = ReconcileMetrics(CollectorRegistry())
    poller = reconciler(server, published, cursors, metrics=metrics)
    poller.poll_once()
    before = cursors.cursors["tasks"]
    server.write("t1", "completed")
    server.down = True
    report = poller.poll_once()
    assert report.queries[0].error == "FhirTransportError"
    assert metrics.errors.labels("tasks", "FhirTransportError")._value.get() == 1
    server.down, published.fail = False, True  # the broker refuses the events
    poller.poll_once()
    assert cursors.cursors["tasks"] == before and published.events == []
    published.fail = False
    poller.poll_once()
    assert published.statuses() == [("Task/t1", "completed")]
    assert metrics.lag.labels("tasks")._value.get() >= 0


def test_an_instance_that_does_not_lead_does_not_poll() -> None:
    server, published = PagedServer(), Published()

    class Follower(MemoryCursors):
        def leading(self) -> bool:
            return False

    cursors = Follower()
    poller = Reconciler(server.search, published, cursors, leadership=cursors, queries=TASKS)
    assert poller.poll_once().skipped and server.searches == []


def test_polling_more_often_than_every_15_minutes_is_refused_by_default() -> None:
    server, published = PagedServer(), Published()
    with pytest.raises(ConfigError, match="SHOULD NOT query more often than every 15 minutes"):
        Reconciler(server.search, published, MemoryCursors(), interval=600)
    needed = {"kafka_bootstrap": "127.0.0.1:9092", "fhir_base_url": "http://127.0.0.1:1/fhir"}
    with pytest.raises(ConfigError, match=r"RECONCILE_INTERVAL.*SHOULD NOT query more often"):
        load_settings(reconcile_interval=600, **needed)
    assert load_settings(**needed).reconcile_interval == 3600
    # The explicit test seam only (no setting reaches it).
    seam = Reconciler(
        server.search, published, MemoryCursors(), interval=1, allow_short_interval=True
    )
    assert seam.interval == 1


def test_reconcile_now_runs_a_poll_without_waiting_for_the_interval() -> None:
    server, cursors = PagedServer(), MemoryCursors()
    done = threading.Event()

    class Signalling(Published):
        def __call__(self, events: Sequence[CloudEvent]) -> None:
            super().__call__(events)
            done.set()

    published = Signalling()
    poller = reconciler(server, published, cursors).start()
    try:
        server.write("t1", "completed")
        # the loop's first poll may or may not have seen t1 yet; a requested poll finds it
        established = threading.Event()
        while not established.wait(0.05):
            if "tasks" in cursors.cursors:
                established.set()
        server.write("t2", "completed")
        poller.reconcile_now("subscription error")
        assert done.wait(30), "the requested poll did not run"
    finally:
        poller.close()
    assert ("Task/t2", "completed") in published.statuses()


def test_a_busy_server_changing_between_every_page_still_moves_the_cursor_on() -> None:
    server, published, cursors = PagedServer(), Published(), MemoryCursors()
    poller = reconciler(server, published, cursors, page_size=2)  # overlap 60 s > all of it
    poller.poll_once()
    for n in range(12):
        server.write(f"t{n}", "accepted")
    turns = iter(range(10_000))  # more than the windows of one poll

    def someone_writes() -> None:  # one organisation keeps working while the poller pages
        n = next(turns, None)
        if n is not None:
            server.write("t11", "completed" if n % 2 else "in-progress")

    server.between_pages = someone_writes
    poller.poll_once()  # every window is disturbed: the cursor must still move on
    since = cursors.cursors["tasks"].since
    assert since is not None
    assert since >= datetime.fromisoformat(server.tasks["t10"]["meta"]["lastUpdated"])
    server.between_pages = None
    poller.poll_once()
    versions = [(e.data["task"], e.data["task_version"]) for e in published.events]
    assert len(versions) == len(set(versions))  # no version twice
    current = {(f"Task/{tid}", r["meta"]["versionId"]) for tid, r in server.tasks.items()}
    assert current <= set(versions)  # every Task's latest state reached carecoord
