"""The reconciling poller: the source of truth behind FHIR notifications (docs/reconcile.md).

Notifications get lost (a server restarts, a Subscription errors, the listener is down); the
Gravity SDOHCC IG has a referral source that does not rely on subscriptions poll Task status
"at least once per business day", SHOULD hourly, SHOULD NOT more often than every 15 minutes
(HL7/fhir-sdoh-clinicalcare input/pagecontent/checking_task_status.md at
6604b7ac13b9f0cd80603428f99e5be0672966aa, task-11 / task-12). So every
`CARECOORD_RECONCILE_INTERVAL` seconds (default 3600, at least 900) the leading instance searches
each followed query in `_lastUpdated` windows (carecoord.handlers.notifications.windows), hands
what it finds to the notification translators (`events_of`: the same code turns a polled Task
into `referral.status-changed` / `task.status-changed` as a notified one), skips the versions a
notification already brought (the shared `SeenVersions`), publishes the events to the input
topic, and then stores the query's cursor.

The cursor lives in a compacted Kafka topic (`CARECOORD_RECONCILE_CURSOR_TOPIC`, default
`<group_id>.reconcile.cursor`; key = query name, value = the cursor's JSON): written after the
events are acknowledged, read again at each poll, so a restart (or a new leader) starts where
the last poll ended. Leadership: every instance joins the consumer group `<group_id>.reconcile`
on that one-partition topic; the instance that owns partition 0 polls, the others only keep
their membership. A crash between the publish and the cursor write re-publishes those events at
the next poll under the same ids (the processor's outbox gives one effect). At start-up only the
queries without a cursor are polled at once (to establish it); the others catch up at the first
interval.

A failed poll (FHIR outage, broker down) is logged and counted, its cursor stays, and the next
interval retries it; readiness is the service's availability logic's business, not the poller's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from carecoord.core.envelope import CloudEvent
from carecoord.errors import ConfigError, MalformedEvent
from carecoord.events.broker import TP, Broker, Message, Producer
from carecoord.fhir.models import to_json
from carecoord.fhir.notification_bundles import Changed
from carecoord.handlers.notifications.referrals import ResourceTranslator, events_of
from carecoord.handlers.notifications.seen import POLLED, SeenVersions, resource_key
from carecoord.handlers.notifications.windows import (
    DEFAULT_PAGE_SIZE,
    Cursor,
    FollowedQuery,
    advance,
    bundle_time,
    is_new,
    last_updated,
    page_resources,
    window_params,
)
from carecoord.service.metrics import ReconcileMetrics

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 3600.0  # the IG's SHOULD: hourly
MIN_INTERVAL = 900.0  # the IG's SHOULD NOT: not more often than every 15 minutes
DEFAULT_OVERLAP = 300.0
DEFAULT_CURSOR_TOPIC = "carecoord.reconcile.cursor"
MAX_WINDOWS = 50  # windows of one query per poll when paging is disturbed by new changes
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# What carecoord follows: the Tasks it requested or owns (translators keep carecoord's own, told
# by their business identifiers), completed questionnaires, finished encounters. No status filter
# on the server: the translators decide, and a status search is not one every server indexes.
DEFAULT_QUERIES: tuple[FollowedQuery, ...] = (
    FollowedQuery("tasks", "Task"),
    FollowedQuery("questionnaire-responses", "QuestionnaireResponse"),
    FollowedQuery("encounters", "Encounter"),
)

PageSearch = Callable[[str, Sequence[tuple[str, str]]], Iterator[Mapping[str, Any]]]
"""(resource type, params) -> the searchset Bundles (JSON), one per page, next links followed."""


class ReconcileTrigger(Protocol):
    """What the Subscription watchdog calls when it suspects lost notifications."""

    def reconcile_now(self, reason: str) -> None: ...


class CursorStore(Protocol):
    def load(self) -> dict[str, Cursor]: ...

    def save(self, name: str, cursor: Cursor) -> None: ...


class Leadership(Protocol):
    def leading(self) -> bool: ...

    def tick(self, timeout: float) -> None:
        """Keep the membership alive; waits up to `timeout` seconds."""
        ...

    def close(self) -> None: ...


def fhir_pages(fhir: Any) -> PageSearch:
    """A PageSearch over a carecoord FhirClient (`search_pages`), else one page of `search`."""

    def pages(resource_type: str, params: Sequence[tuple[str, str]]) -> Iterator[Mapping[str, Any]]:
        paged = getattr(fhir, "search_pages", None)
        if callable(paged):
            for bundle in paged(resource_type, list(params)):
                yield to_json(bundle)
            return
        found = fhir.search(resource_type, list(params))
        yield {"resourceType": "Bundle", "entry": [{"resource": to_json(r)} for r in found]}

    return pages


class MemoryCursors:
    """Cursors in memory, always leading: for one process and for tests."""

    def __init__(self) -> None:
        self.cursors: dict[str, Cursor] = {}

    def load(self) -> dict[str, Cursor]:
        return dict(self.cursors)

    def save(self, name: str, cursor: Cursor) -> None:
        self.cursors[name] = cursor

    def leading(self) -> bool:
        return True

    def tick(self, timeout: float) -> None:
        threading.Event().wait(timeout)

    def close(self) -> None:
        pass


class KafkaCursors:
    """The cursors in a compacted one-partition topic, and leadership through its consumer group
    (the member assigned partition 0 leads). Use from one thread (the consumer is not safe to
    share); `leading()` may be read from any."""

    def __init__(self, broker: Broker, topic: str, group_id: str, *, timeout: float = 30.0) -> None:
        self._broker = broker
        self._topic = topic
        self._group_id = group_id
        self._timeout = timeout
        self._assigned: frozenset[TP] = frozenset()
        self._consumer: Any = None
        self._producer: Producer | None = None

    # RebalanceListener
    def on_assigned(self, partitions: set[TP]) -> None:
        self._assigned = self._assigned | frozenset(partitions)
        if TP(self._topic, 0) in partitions:
            log.info("reconciling poller: this instance leads", extra={"topic": self._topic})

    def on_revoked(self, partitions: set[TP]) -> None:
        self._assigned = self._assigned - frozenset(partitions)

    def on_lost(self, partitions: set[TP]) -> None:
        self.on_revoked(partitions)

    def start(self) -> None:
        ensure_compacted_topic(self._broker, self._topic)
        self._consumer = self._broker.consumer(self._group_id)
        self._consumer.subscribe([self._topic], self)

    def leading(self) -> bool:
        return TP(self._topic, 0) in self._assigned

    def tick(self, timeout: float) -> None:
        if self._consumer is None:
            self.start()
        try:
            self._consumer.poll(timeout, 1)  # the records are read by load(); this keeps membership
        except Exception as exc:  # a broker outage: not leading until the group answers again
            self._assigned = frozenset()
            log.warning("reconcile leadership: poll failed", extra={"error": type(exc).__name__})
            threading.Event().wait(timeout)

    def load(self) -> dict[str, Cursor]:
        cursors: dict[str, Cursor] = {}
        for record in self._broker.read_topic(self._topic, timeout=self._timeout):
            if record.key is None:
                continue
            name = record.key.decode(errors="replace")
            if record.value is None:  # a tombstone: start that query over
                cursors.pop(name, None)
                continue
            try:
                cursors[name] = Cursor.from_json(record.value)
            except ValueError:
                log.warning("reconcile cursor record unreadable: skipped",
                            extra={"offset": record.offset})  # fmt: skip
        return cursors

    def save(self, name: str, cursor: Cursor) -> None:
        if self._producer is None:
            self._producer = self._broker.producer()
        message = Message(self._topic, name.encode(), cursor.to_json())
        self._producer.send_all([message], self._timeout)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.close()
            self._producer = None
        self._assigned = frozenset()


def ensure_compacted_topic(broker: Broker, topic: str) -> None:
    """The cursor topic, one partition, `cleanup.policy=compact` when created on a real broker
    (only the last cursor per query matters); an existing topic is left as it is."""
    connection = getattr(broker, "connection", None)
    if connection is None:  # the in-memory broker keeps everything anyway
        broker.ensure_topics({topic: 1})
        return
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(**connection.common("admin"))
    try:
        if topic not in set(admin.list_topics()):
            new = NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})
            admin.create_topics([new], raise_errors=False)
    finally:
        admin.close()


@dataclass
class QueryReport:
    name: str
    found: int = 0  # resources the windows returned
    published: int = 0  # events published
    poller_only: int = 0  # versions with events that no notification had brought
    error: str | None = None


@dataclass
class PollReport:
    reason: str
    skipped: bool = False  # another instance leads
    queries: list[QueryReport] = field(default_factory=list)

    @property
    def published(self) -> int:
        return sum(q.published for q in self.queries)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    """Polls the followed queries; `poll_once()` runs one poll, `start()` a loop every
    `interval` seconds (and at once on `reconcile_now`)."""

    def __init__(
        self,
        search: PageSearch,
        publish: Callable[[Sequence[CloudEvent]], None],
        cursors: CursorStore,
        *,
        leadership: Leadership | None = None,
        seen: SeenVersions | None = None,
        translators: Mapping[str, ResourceTranslator] | None = None,
        queries: Sequence[FollowedQuery] = DEFAULT_QUERIES,
        interval: float = DEFAULT_INTERVAL,
        overlap: float = DEFAULT_OVERLAP,
        page_size: int = DEFAULT_PAGE_SIZE,
        metrics: ReconcileMetrics | None = None,
        clock: Callable[[], datetime] = _utc_now,
        ready: Callable[[], bool] = lambda: True,
        allow_short_interval: bool = False,
    ) -> None:
        # `allow_short_interval` is the test seam: nothing in the settings reaches it.
        if interval < MIN_INTERVAL and not allow_short_interval:
            raise ConfigError(
                f"CARECOORD_RECONCILE_INTERVAL is {interval:g} s: use 900 or more (the Gravity "
                "SDOHCC IG: systems SHOULD NOT query more often than every 15 minutes), e.g. 3600"
            )
        if interval <= 0 or overlap < 0 or page_size < 1:
            raise ConfigError("the reconciling poller needs interval > 0, overlap >= 0, page_size")
        self._search = search
        self._publish = publish
        self._cursors = cursors
        self._leadership = leadership
        self.seen = seen if seen is not None else SeenVersions()
        self._translators = translators
        self.queries = tuple(queries)
        self.interval = interval
        self._overlap = timedelta(seconds=overlap)
        self._page_size = page_size
        self._metrics = metrics
        self._clock = clock
        self._ready = ready
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reasons: list[str] = []
        self._thread: threading.Thread | None = None

    # ReconcileTrigger ----------------------------------------------------------------------

    def reconcile_now(self, reason: str) -> None:
        """Ask the loop for a poll now (e.g. the Subscription watchdog saw an error or a gap).
        Only the leading instance polls; on another one the leader's next poll covers it."""
        log.info("reconcile requested", extra={"reason": reason[:200]})
        self._reasons.append(reason[:200])
        self._wake.set()

    # The loop --------------------------------------------------------------------------------

    def start(self) -> Reconciler:
        self._thread = threading.Thread(target=self._loop, name="carecoord-reconcile", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        if self._leadership is not None:
            self._leadership.close()

    def _loop(self) -> None:
        due = 0.0  # the first poll at once: it establishes the cursors of a new deployment
        elapsed = 0.0
        started = False
        while not self._stop.is_set():
            if self._leadership is not None:
                try:
                    self._leadership.tick(0.5)
                except Exception as exc:
                    log.warning("reconcile leadership failed", extra={"error": type(exc).__name__})
                    self._stop.wait(1.0)
                elapsed += 0.5
            else:
                self._wake.wait(0.5)
                elapsed += 0.5
            if self._stop.is_set():
                break
            woken = self._wake.is_set()
            # While the FHIR server is known to be down the poll waits (it is not skipped): the
            # availability probes say when it answers again.
            if (elapsed >= due or woken) and self._ready():
                self._wake.clear()
                reason = "; ".join(self._reasons) or "interval"
                self._reasons.clear()
                try:
                    # At start-up only the queries without a cursor are polled (established);
                    # the others catch up at the first interval.
                    skipped = self.poll_once(reason, establish_only=not started).skipped
                except Exception as exc:  # poll_once counts its own; this is the last net
                    log.warning("reconcile poll failed", extra={"error": type(exc).__name__})
                    skipped = False
                if not skipped:  # a follower polls as soon as it leads (it keeps its due time)
                    elapsed, due, started = 0.0, self.interval, True

    # One poll --------------------------------------------------------------------------------

    def leading(self) -> bool:
        return self._leadership is None or self._leadership.leading()

    def poll_once(self, reason: str = "interval", *, establish_only: bool = False) -> PollReport:
        """One poll of every followed query (when this instance leads); `establish_only`: only
        the queries that have no cursor yet."""
        with self._lock:
            report = PollReport(reason)
            if not self.leading():
                report.skipped = True
                return report
            try:
                cursors = self._cursors.load()
            except Exception as exc:
                log.warning("reconcile cursors unreadable", extra={"error": type(exc).__name__})
                for query in self.queries:
                    report.queries.append(QueryReport(query.name, error=type(exc).__name__))
                    self._count_error(query, exc)
                return report
            for query in self.queries:
                if establish_only and query.name in cursors:
                    continue
                report.queries.append(self._poll_query(query, cursors.get(query.name, Cursor())))
            if self._metrics is not None:
                self._metrics.polls.inc()
            return report

    def _poll_query(self, query: FollowedQuery, cursor: Cursor) -> QueryReport:
        result = QueryReport(query.name)
        try:
            overlap = self._overlap  # the first window reaches back; a continuation does not
            for _ in range(MAX_WINDOWS):
                cursor, complete = self._window(query, cursor, result, overlap)
                self._cursors.save(query.name, cursor)
                if complete:
                    break
                overlap = timedelta(0)
        except Exception as exc:  # FHIR or broker outage: the cursor stays, next interval retries
            result.error = type(exc).__name__
            self._count_error(query, exc)
            log.warning(
                "reconcile poll of a query failed",
                extra={"query": query.name, "error": type(exc).__name__},
            )
        since = cursor.since
        if self._metrics is not None and since is not None and since != EPOCH:
            lag = (self._clock() - since).total_seconds()
            self._metrics.lag.labels(query.name).set(max(0.0, lag))
        return result

    def _window(
        self, query: FollowedQuery, cursor: Cursor, result: QueryReport, overlap: timedelta
    ) -> tuple[Cursor, bool]:
        """One window from the cursor's `since - overlap`: (the cursor after it, whether it was
        read whole).

        Offset paging skips a result when another one changes between two page fetches (it
        moves to the end). Such a change shows as a result newer than the first page's search
        time (its Bundle.meta.lastUpdated); the pages fetched before the earliest such change
        are sound, so the cursor advances to their last result only, and the next window (no
        overlap: it continues this one) reads on from there."""
        params = window_params(query, cursor, overlap, self._page_size)
        establishing = cursor.since is None
        pages: list[tuple[datetime | None, list[dict[str, Any]]]] = []
        for page in self._search(query.resource_type, params):
            resources = page_resources(page, query.resource_type)
            result.found += len(resources)
            pages.append((bundle_time(page), resources))
            if establishing:  # the newest resource (or the server's time) is where we start
                break
            self._handle(query, [r for r in resources if is_new(r, cursor)], result)
        everything = [r for _, resources in pages for r in resources]
        first_time = pages[0][0] if pages else None
        times = [first_time] if first_time is not None else []
        if establishing:
            new = advance(cursor, everything, self._overlap, times)
            # An empty type on a server that gives no time: everything from now on is new.
            return (new if new.since is not None else Cursor(EPOCH, {})), True
        if len(pages) <= 1:
            return advance(cursor, everything, self._overlap, times), True
        if first_time is None:  # no search times to tell: trust the first page only
            return advance(cursor, pages[0][1], self._overlap), False
        newer = [t for r in everything if (t := last_updated(r)) is not None and t > first_time]
        if not newer:
            return advance(cursor, everything, self._overlap, times), True
        changed_at = min(newer)
        sound = [
            r
            for n, (when, resources) in enumerate(pages)
            if n == 0 or (when is not None and when < changed_at)
            for r in resources
        ]
        return advance(cursor, sound, self._overlap), False

    def _handle(
        self, query: FollowedQuery, resources: Sequence[Mapping[str, Any]], result: QueryReport
    ) -> None:
        events: list[CloudEvent] = []
        keys: list[str | None] = []
        only_polled = 0
        for resource in resources:
            key = resource_key(resource)
            if key is not None and key in self.seen:
                continue  # a notification brought this version
            rid = str(resource.get("id"))
            version = key.rsplit("/", 1)[1] if key else None
            changed = Changed(resource, query.resource_type, rid, version)
            try:
                found = events_of(changed, self._translators)
            except MalformedEvent as exc:  # one bad resource must not stop the others
                log.warning("reconcile: resource not translated",
                            extra={"resource": changed.reference, "error": str(exc)})  # fmt: skip
                found = []
            if found:
                only_polled += 1
                events.extend(found)
            keys.append(key)
        if events:
            self._publish(events)  # raises on failure: nothing remembered, the cursor stays
            log.info(
                "reconcile published",
                extra={"query": query.name, "event_ids": [e.id for e in events]},
            )
        self.seen.remember(keys, by=POLLED)
        result.published += len(events)
        result.poller_only += only_polled
        if self._metrics is not None and only_polled:
            self._metrics.poller_only.labels(query.resource_type).inc(only_polled)

    def _count_error(self, query: FollowedQuery, exc: BaseException) -> None:
        if self._metrics is not None:
            self._metrics.errors.labels(query.name, type(exc).__name__).inc()


__all__ = [
    "DEFAULT_CURSOR_TOPIC",
    "DEFAULT_INTERVAL",
    "DEFAULT_QUERIES",
    "MIN_INTERVAL",
    "CursorStore",
    "KafkaCursors",
    "Leadership",
    "MemoryCursors",
    "PageSearch",
    "PollReport",
    "ReconcileTrigger",
    "Reconciler",
    "ensure_compacted_topic",
    "fhir_pages",
]
