"""The resource versions carecoord has already turned into events, shared by the notification
endpoint and the reconciling poller (carecoord.service.reconcile): a change that a notification
and a poll both bring is published once by this process. Each version remembers who published it
first (`NOTIFIED` or `POLLED`): the poller skips every version a notification brought, the
endpoint every version the poller found; a notification the server itself repeats is still
published again under the same id (at-least-once, as before: docs/listeners.md).

The key is the resource's version, `Type/id/_history/versionId`. Across processes (a restart, a
notification on one instance and the poll on another) the events' ids are derived from the same
version (carecoord.handlers.notifications.common.status_event), so the processor's outbox gives
one effect per change there too; this set only spares the second publish.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from carecoord.fhir.notification_bundles import Changed

NOTIFIED = "notification"
POLLED = "poll"
DEFAULT_CAPACITY = 100_000  # ~10 MB of short strings: a day's changes of a large practice


def version_key(resource_type: str, resource_id: str, version: str | None) -> str | None:
    """`Type/id/_history/v`, or None for a resource without a version (never deduplicated)."""
    return f"{resource_type}/{resource_id}/_history/{version}" if version else None


def key_of(changed: Changed) -> str | None:
    return version_key(changed.resource_type, changed.id, changed.version)


def resource_key(resource: Mapping[str, Any]) -> str | None:
    """The version key of a resource's JSON (its resourceType, id and meta.versionId)."""
    meta = resource.get("meta")
    version = meta.get("versionId") if isinstance(meta, Mapping) else None
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if not (isinstance(rtype, str) and isinstance(rid, str) and isinstance(version, str | int)):
        return None
    return version_key(rtype, rid, str(version))


class SeenVersions:
    """A thread-safe, bounded set of version keys (the oldest forgotten first)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._keys: OrderedDict[str, str] = OrderedDict()  # key -> who published it first
        self._capacity = capacity
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def seen(self, changed: Changed, *, by: str | None = None) -> bool:
        """Whether the version was published (by `by` first, when given)."""
        key = key_of(changed)
        if key is None:
            return False
        with self._lock:
            first = self._keys.get(key)
        return first is not None and (by is None or first == by)

    def remember(self, keys: Iterable[str | None], by: str = NOTIFIED) -> None:
        """Remember these versions as published by `by` (call once the events are acknowledged);
        a version keeps the publisher it was first remembered with."""
        with self._lock:
            for key in keys:
                if key is None:
                    continue
                self._keys.setdefault(key, by)
                self._keys.move_to_end(key)
            while len(self._keys) > self._capacity:
                self._keys.popitem(last=False)


__all__ = ["NOTIFIED", "POLLED", "SeenVersions", "key_of", "resource_key", "version_key"]
