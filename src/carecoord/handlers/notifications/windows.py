"""The reconciling poller's search windows and cursor, pure (no I/O): carecoord.service.reconcile
runs them against the FHIR server.

Each followed query is searched in `_lastUpdated` windows. A window starts at the cursor's
`since` minus `overlap`: `since` is the newest `meta.lastUpdated` the server itself showed for the
query (or the searchset Bundle's `meta.lastUpdated`), never the local clock, so a clock skew
between carecoord and the server loses nothing; the overlap takes back changes the server
committed with an earlier timestamp after the last search ran (a long transaction, a lagging
search index). What the overlap reads again is not handled twice: the cursor keeps the versions
it handled at or after `since - overlap` (`recent`), and the window skips them.

Only a lower bound is sent (`ge`, as everywhere in carecoord: docs/architecture.md "Search
cost"), sorted by `_lastUpdated`, paged through the Bundle's next links.

Source of the polling rule: the Gravity SDOHCC IG, HL7/fhir-sdoh-clinicalcare
input/pagecontent/checking_task_status.md at 6604b7ac13b9f0cd80603428f99e5be0672966aa,
"Polling": `[base]/Task?requester=...&_lastupdated=gt...`; task-11 "at least once per business
day and SHOULD check ... at least once per hour"; task-12 "SHOULD NOT query more often than
every 15 minutes".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from carecoord.handlers.notifications.seen import resource_key

DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class FollowedQuery:
    """A search carecoord follows: a name (the cursor's key), a resource type, fixed params."""

    name: str
    resource_type: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Cursor:
    """Where a query's next window starts: the server's newest `lastUpdated` seen (None: not
    polled yet) and the versions already handled inside the overlap (key -> lastUpdated)."""

    since: datetime | None = None
    recent: Mapping[str, datetime] = field(default_factory=dict)

    def to_json(self) -> bytes:
        body = {
            "since": self.since.isoformat() if self.since else None,
            "recent": {k: v.isoformat() for k, v in sorted(self.recent.items())},
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Cursor:
        """The cursor in `raw`; ValueError for a record that is not one."""
        body = json.loads(raw)
        if not isinstance(body, dict) or not isinstance(body.get("recent", {}), dict):
            raise ValueError("not a reconcile cursor")
        since = body.get("since")
        return cls(
            _aware(datetime.fromisoformat(since)) if isinstance(since, str) else None,
            {str(k): _aware(datetime.fromisoformat(v)) for k, v in body.get("recent", {}).items()},
        )


def instant(when: datetime) -> str:
    """A FHIR instant (UTC, milliseconds: what servers store)."""
    return _aware(when).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def window_params(
    query: FollowedQuery,
    cursor: Cursor,
    overlap: timedelta,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> list[tuple[str, str]]:
    """The search of the next window. A query never polled asks for its newest resource only
    (`establish`): carecoord follows changes from its first poll on, history is not replayed."""
    params = list(query.params)
    if cursor.since is None:
        return [*params, ("_sort", "-_lastUpdated"), ("_count", "1")]
    start = cursor.since - overlap
    return [
        *params,
        ("_lastUpdated", f"ge{instant(start)}"),
        ("_sort", "_lastUpdated"),
        ("_count", str(page_size)),
    ]


def last_updated(resource: Mapping[str, Any]) -> datetime | None:
    meta = resource.get("meta")
    value = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        return _aware(datetime.fromisoformat(value))
    except ValueError:
        return None


def page_resources(page: Mapping[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """The matches of one searchset page (included resources and OperationOutcomes left out)."""
    found: list[dict[str, Any]] = []
    for entry in page.get("entry") or []:
        if not isinstance(entry, Mapping):
            continue
        search = entry.get("search")
        if isinstance(search, Mapping) and search.get("mode") not in (None, "match"):
            continue
        resource = entry.get("resource")
        if isinstance(resource, dict) and resource.get("resourceType") == resource_type:
            found.append(resource)
    return found


def is_new(resource: Mapping[str, Any], cursor: Cursor) -> bool:
    """Not handled by an earlier window (a resource without a version is always new)."""
    key = resource_key(resource)
    return key is None or key not in cursor.recent


def advance(
    cursor: Cursor,
    handled: Iterable[Mapping[str, Any]],
    overlap: timedelta,
    bundle_times: Sequence[datetime] = (),
) -> Cursor:
    """The cursor after a window whose resources were all handled: `since` moves to the newest
    server time seen (a result's lastUpdated or a page's Bundle.meta.lastUpdated; never back),
    `recent` keeps the versions at or after the new `since - overlap`."""
    recent = dict(cursor.recent)
    times: list[datetime] = list(bundle_times)
    for resource in handled:
        when = last_updated(resource)
        if when is None:
            continue
        times.append(when)
        key = resource_key(resource)
        if key is not None:
            recent[key] = when
    candidates = [t for t in (cursor.since, *times) if t is not None]
    since = max(candidates) if candidates else None
    if since is None:
        return Cursor(None, {})
    floor = since - overlap
    return Cursor(since, {k: v for k, v in recent.items() if v >= floor})


def bundle_time(page: Mapping[str, Any]) -> datetime | None:
    """The searchset Bundle's meta.lastUpdated (when the server ran the search), if it says."""
    return last_updated(page)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "Cursor",
    "FollowedQuery",
    "advance",
    "bundle_time",
    "instant",
    "is_new",
    "last_updated",
    "page_resources",
    "window_params",
]
