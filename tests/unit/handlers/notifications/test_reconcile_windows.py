"""The poller's windows and cursor: they start from the server's own time, overlap, and what the
overlap reads again is not handled twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from carecoord.handlers.notifications.seen import SeenVersions, resource_key
from carecoord.handlers.notifications.windows import (
    Cursor,
    FollowedQuery,
    advance,
    instant,
    is_new,
    page_resources,
    window_params,
)

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
OVERLAP = timedelta(minutes=5)
TASKS = FollowedQuery("tasks", "Task")


def task(tid: str, version: str, at: datetime) -> dict[str, object]:
    return {
        "resourceType": "Task",
        "id": tid,
        "meta": {"versionId": version, "lastUpdated": instant(at)},
    }


def test_a_query_never_polled_asks_only_for_the_servers_newest_change() -> None:
    assert window_params(TASKS, Cursor(), OVERLAP) == [("_sort", "-_lastUpdated"), ("_count", "1")]


def test_the_window_reaches_back_by_the_overlap_from_the_cursor_sorted_and_paged() -> None:
    params = window_params(
        FollowedQuery("x", "Task", (("owner", "Organization/o"),)), Cursor(T0), OVERLAP, 50
    )
    assert params == [
        ("owner", "Organization/o"),
        ("_lastUpdated", "ge2026-12-07T08:55:00.000Z"),
        ("_sort", "_lastUpdated"),
        ("_count", "50"),
    ]


def test_the_cursor_moves_to_the_servers_newest_time_never_the_local_clock() -> None:
    # The server's clock runs 2 hours behind ours: the cursor follows the server.
    server_late = T0 - timedelta(hours=2)
    after = advance(
        Cursor(server_late - timedelta(hours=1)), [task("a", "3", server_late)], OVERLAP
    )
    assert after.since == server_late
    # A Bundle's meta.lastUpdated (the server's time of the search) moves it too.
    searched = server_late + timedelta(seconds=30)
    assert advance(after, [], OVERLAP, [searched]).since == searched


def test_the_cursor_never_moves_back() -> None:
    older = task("a", "1", T0 - timedelta(hours=3))
    assert advance(Cursor(T0), [older], OVERLAP).since == T0


def test_versions_handled_inside_the_overlap_are_not_new_in_the_next_window() -> None:
    first = task("a", "1", T0)
    cursor = advance(Cursor(T0 - timedelta(hours=1)), [first], OVERLAP)
    assert not is_new(first, cursor)
    assert is_new(task("a", "2", T0 + timedelta(seconds=1)), cursor)  # its next version is
    # A change the server committed late, stamped inside the overlap, is new.
    assert is_new(task("b", "1", T0 - timedelta(minutes=2)), cursor)


def test_the_cursor_forgets_versions_older_than_the_overlap() -> None:
    old, new = task("a", "1", T0), task("b", "1", T0 + timedelta(minutes=10))
    cursor = advance(advance(Cursor(T0 - timedelta(hours=1)), [old], OVERLAP), [new], OVERLAP)
    assert set(cursor.recent) == {"Task/b/_history/1"}


def test_the_cursor_survives_its_json_round_trip() -> None:
    cursor = advance(Cursor(T0), [task("a", "1", T0 + timedelta(seconds=1))], OVERLAP)
    assert Cursor.from_json(cursor.to_json()) == cursor
    assert Cursor.from_json(Cursor().to_json()) == Cursor()


def test_only_the_pages_matches_of_the_type_are_its_resources() -> None:
    page = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": task("a", "1", T0), "search": {"mode": "match"}},
            {
                "resource": {"resourceType": "ServiceRequest", "id": "s"},
                "search": {"mode": "include"},
            },
            {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}},
            {"resource": task("b", "1", T0)},
        ],
    }
    assert [r["id"] for r in page_resources(page, "Task")] == ["a", "b"]


def test_seen_versions_are_keyed_by_type_id_and_version_and_bounded() -> None:
    seen = SeenVersions(capacity=2)
    seen.remember([resource_key(task("a", "1", T0)), None, "Task/b/_history/1"])
    assert "Task/a/_history/1" in seen and "Task/a/_history/2" not in seen
    seen.remember(["Task/c/_history/1"])
    assert "Task/a/_history/1" not in seen and len(seen) == 2


def test_a_version_keeps_who_published_it_first() -> None:
    from carecoord.fhir.notification_bundles import Changed
    from carecoord.handlers.notifications.seen import NOTIFIED, POLLED

    seen = SeenVersions()
    polled = Changed(task("a", "1", T0), "Task", "a", "1")
    notified = Changed(task("b", "1", T0), "Task", "b", "1")
    seen.remember(["Task/a/_history/1"], by=POLLED)
    seen.remember(["Task/b/_history/1"], by=NOTIFIED)
    seen.remember(["Task/a/_history/1"], by=NOTIFIED)  # a repeated notification after the poll
    assert seen.seen(polled, by=POLLED) and not seen.seen(polled, by=NOTIFIED)
    assert seen.seen(notified) and not seen.seen(notified, by=POLLED)
