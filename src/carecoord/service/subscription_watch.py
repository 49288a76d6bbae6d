"""Watching carecoord's Subscriptions for lost notifications, and recovering what they lost.

Notifications get lost (HAPI FHIR #6002, #4733; Medplum #5131, #2400), and the Subscriptions R4
Backport IG (STU 1.1, HL7/fhir-subscription-backport-ig @ 1037e74baec348cf6cb72acc7ff5675d48d55bc0,
input/pagecontent/notifications.md and input/fsh/BackportNotificationR4.fsh) says a notification
might not be delivered, or be delivered several times. It gives the subscriber the means to
notice: every notification's status carries `events-since-subscription-start` (not counting
handshakes and heartbeats) and each event its `event-number`; a heartbeat comes every
heartbeat period; `$status` tells the server's count, `$events` replays events by number.

Per subscription (by id) this keeps the numbers processed and the highest number heard of:
- a handshake or heartbeat answers 200 and processes nothing; its count baselines or, above the
  highest heard, is a gap;
- an event whose numbers were all processed is a duplicate: 200, nothing re-read;
- an event number above highest + 1 is a gap (the numbers between were lost);
- a subscription with a heartbeat period silent for twice it is "missed";
- a gap or a miss starts a recovery on a background thread: `$status` (its status: `error` is a
  WARNING and a metric, never an outage), then `$events` for the missing numbers where the
  server offers it (replayed through the endpoint as any notification), else the reconciling
  poller is asked to run now (`ReconcileTrigger`).
At start the counts are re-baselined with `$status`, so a restart is no false gap; a subscription
never seen before is baselined by its first notification.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol

from carecoord.fhir.errors import FhirError
from carecoord.fhir.subscriptions import StatusInfo, SubscriptionManager, offers_events
from carecoord.service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

EVENT_TYPES = frozenset({"event-notification", "query-event"})
RECENT_EVENTS = 4096  # per subscription: (number, focus) of the events processed lately
Verdict = Literal["nothing", "process", "duplicate"]
Replay = Callable[[Mapping[str, Any]], bool]


def _events_of(info: StatusInfo) -> tuple[tuple[int, str | None], ...]:
    """The notification's events; one without event parts is numbered by its count (the IG:
    events-since-subscription-start includes this notification)."""
    if info.events:
        return info.events
    count = info.events_since_start
    return ((count, None),) if count is not None else ()


class ReconcileTrigger(Protocol):
    """Asks the reconciling poller to compare carecoord with the FHIR server now."""

    def reconcile_now(self, reason: str) -> None: ...


class WarningReconcileTrigger:
    """The default until a reconciler is plugged in: the operator is told, nothing else."""

    def reconcile_now(self, reason: str) -> None:
        log.warning(
            "FHIR notifications may have been lost and no reconciler is wired: run one",
            extra={"reason": reason},
        )


class SubscriptionServer(Protocol):
    """What a recovery asks the FHIR server (carecoord.fhir.subscriptions.SubscriptionManager)."""

    def status(self, sub_id: str) -> StatusInfo | None: ...

    def events(self, sub_id: str, since: int, until: int) -> dict[str, Any] | None: ...


@dataclass
class _Tracked:
    floor: int | None = None  # every number up to it is processed (or was given up on)
    top: int | None = None  # the highest number heard of
    done: set[int] = field(default_factory=set)  # processed numbers above floor
    # the events processed lately, as (number, focus): a repeat is the same number AND focus,
    # so a server whose count restarted (an in-memory counter after a restart) loses nothing
    recent: OrderedDict[tuple[int, str | None], None] = field(default_factory=OrderedDict)
    heartbeat: float | None = None
    heard: float = 0.0
    missed: bool = False
    in_error: bool = False

    def start_at(self, count: int) -> None:
        self.floor = self.top = count
        self.done.clear()

    def mark_done(self, numbers: range | tuple[int, ...]) -> None:
        if self.floor is None:
            return
        self.done.update(n for n in numbers if n > self.floor)
        while self.floor + 1 in self.done:
            self.floor += 1
            self.done.discard(self.floor)

    def remember(self, events: Sequence[tuple[int, str | None]]) -> None:
        for key in events:
            self.recent[key] = None
            self.recent.move_to_end(key)
        while len(self.recent) > RECENT_EVENTS:
            self.recent.popitem(last=False)

    def repeats(self, events: Sequence[tuple[int, str | None]]) -> bool:
        return bool(events) and all(key in self.recent for key in events)


class SubscriptionWatch:
    """Event numbers and heartbeats per subscription; recoveries. Thread-safe."""

    def __init__(
        self,
        *,
        trigger: ReconcileTrigger | None = None,
        server: SubscriptionServer | None = None,
        events_offered: bool = False,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        run: Callable[[Callable[[], object]], object] | None = None,
    ) -> None:
        self.trigger: ReconcileTrigger = trigger or WarningReconcileTrigger()
        self.server = server
        self.events_offered = events_offered
        self.replay: Replay | None = None  # the endpoint's processing, for $events bundles
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._subs: dict[str, _Tracked] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._run = run or self._background

    # --- what the endpoint tells -------------------------------------------------------------

    def received(self, info: StatusInfo) -> Verdict:
        """A notification's status arrived: what to do with it."""
        kind = info.type or "unknown"
        if self._metrics is not None:
            self._metrics.notifications_received.labels(kind).inc()
        if info.subscription is None:
            return "process" if kind in EVENT_TYPES else "nothing"
        gap: tuple[int, int] | None = None
        verdict: Verdict = "nothing"
        with self._lock:
            sub = self._subs.setdefault(info.subscription, _Tracked(heard=self._clock()))
            sub.heard, sub.missed = self._clock(), False
            self._note_status(info.subscription, sub, info.status)
            count = info.events_since_start
            if kind in EVENT_TYPES:
                events = _events_of(info)
                numbers = [n for n, _ in events]
                if numbers and sub.floor is None:
                    sub.start_at(min(numbers) - 1)
                if sub.repeats(events):
                    verdict = "duplicate"
                else:
                    verdict = "process"
                    gap = self._heard_of(
                        sub, max(numbers, default=None), min(numbers, default=None)
                    )
            elif count is not None:
                if sub.floor is None or (sub.top is not None and count < sub.top):
                    sub.start_at(count)  # first heard of, or the server's count restarted
                else:
                    gap = self._heard_of(sub, count, count + 1)
        if verdict == "duplicate" and self._metrics is not None:
            self._metrics.notification_duplicates.inc()
        if gap is not None:
            self._gap(info.subscription, *gap)
        return verdict

    def received_resource(self) -> None:
        """A criteria-based notification (a bare resource: no status, no numbers)."""
        if self._metrics is not None:
            self._metrics.notifications_received.labels("resource").inc()

    def processed(self, info: StatusInfo) -> None:
        """The notification's events are published: its numbers are done."""
        if info.subscription is None:
            return
        with self._lock:
            sub = self._subs.get(info.subscription)
            if sub is not None:
                events = _events_of(info)
                sub.remember(events)
                sub.mark_done(tuple(n for n, _ in events))

    @staticmethod
    def _heard_of(sub: _Tracked, highest: int | None, lowest: int | None) -> tuple[int, int] | None:
        """Raise `top` to `highest`; the numbers skipped below `lowest`, if any (a gap)."""
        if highest is None or lowest is None or sub.top is None:
            return None
        gap = (sub.top + 1, lowest - 1) if lowest > sub.top + 1 else None
        sub.top = max(sub.top, highest)
        return gap

    def _gap(self, sub_id: str, first: int, last: int) -> None:
        if self._metrics is not None:
            self._metrics.notification_gaps.inc()
        log.warning(
            "FHIR notifications lost: event numbers skipped",
            extra={"subscription": sub_id, "first": first, "last": last},
        )
        self._run(partial(self.recover, sub_id, first, last, "event numbers skipped"))

    # --- start and watchdog -----------------------------------------------------------------

    def watch(self, sub_id: str, *, heartbeat_period: int | None, events_since: int | None) -> None:
        """Track `sub_id` (from the server's list and `$status`), baselined at `events_since`."""
        with self._lock:
            sub = self._subs.setdefault(sub_id, _Tracked())
            sub.heard = self._clock()
            sub.heartbeat = float(heartbeat_period) if heartbeat_period else None
            if events_since is not None:
                sub.start_at(events_since)

    def baseline(self, manager: SubscriptionManager) -> None:
        """Track carecoord's Subscriptions as the server lists them, counts from `$status`."""
        self.events_offered = self.events_offered or offers_events(manager.statement())
        for reg in manager.registered():
            self._note_status(reg.id, None, reg.status)
            count = None
            if reg.shape == "topic":
                try:
                    info = manager.status(reg.id)
                except FhirError as exc:
                    log.warning("$status failed", extra={"error": type(exc).__name__})
                    info = None
                count = info.events_since_start if info else None
            self.watch(reg.id, heartbeat_period=reg.heartbeat_period, events_since=count)

    def refresh(self, manager: SubscriptionManager) -> None:
        """Periodic: the statuses as the server lists them (`error`: a WARNING and the gauge),
        and the heartbeat periods of Subscriptions registered since (counts untouched)."""
        for reg in manager.registered():
            self._note_status(reg.id, None, reg.status)
            with self._lock:
                sub = self._subs.setdefault(reg.id, _Tracked(heard=self._clock()))
                period = float(reg.heartbeat_period) if reg.heartbeat_period else None
                if period != sub.heartbeat:
                    sub.heartbeat, sub.heard = period, self._clock()

    def check(self) -> None:
        """The watchdog (periodic): a subscription silent for 2x its heartbeat period is missed."""
        now = self._clock()
        missed: list[tuple[str, int]] = []
        with self._lock:
            for sub_id, sub in self._subs.items():
                if sub.heartbeat is None or sub.missed or now - sub.heard <= 2 * sub.heartbeat:
                    continue
                sub.missed = True
                missed.append((sub_id, (sub.top or 0) + 1))
        for sub_id, first in missed:
            if self._metrics is not None:
                self._metrics.heartbeats_missed.inc()
            log.warning("FHIR subscription heartbeat missed", extra={"subscription": sub_id})
            self._run(partial(self.recover, sub_id, first, None, "heartbeat missed"))

    # --- recovery ---------------------------------------------------------------------------

    def recover(self, sub_id: str, first: int, last: int | None, reason: str) -> str:
        """`$status`, then `$events` for first..last (last: the server's count when None) or
        the reconcile trigger; returns how ("events", "reconcile" or "none")."""
        info: StatusInfo | None = None
        if self.server is not None:
            try:
                info = self.server.status(sub_id)
            except FhirError as exc:
                log.warning("$status failed", extra={"error": type(exc).__name__})
        if info is not None:
            with self._lock:
                sub = self._subs.setdefault(sub_id, _Tracked(heard=self._clock()))
                self._note_status(sub_id, sub, info.status)
                if info.events_since_start is not None and sub.top is not None:
                    sub.top = max(sub.top, info.events_since_start)
            if last is None:  # a silence: whatever the server counted past what was heard
                last = info.events_since_start
        elif last is None:  # no count to compare with: the poller must look
            return self._reconcile(sub_id, None, reason)
        if last is None or first > last:
            self._recovered("none")
            return "none"
        if self.events_offered and self.server is not None and self.replay is not None:
            try:
                bundle = self.server.events(sub_id, first, last)
                if bundle is not None and self.replay(bundle):
                    self._give_up(sub_id, first, last)
                    self._recovered("events")
                    log.info(
                        "lost FHIR notifications recovered with $events",
                        extra={"subscription": sub_id, "first": first, "last": last},
                    )
                    return "events"
            except FhirError as exc:
                log.warning("$events failed", extra={"error": type(exc).__name__})
        return self._reconcile(sub_id, (first, last), reason)

    def _reconcile(self, sub_id: str, numbers: tuple[int, int] | None, reason: str) -> str:
        self.trigger.reconcile_now(f"subscription {sub_id}: {reason}")
        if numbers is not None:
            self._give_up(sub_id, *numbers)  # the poller covers them: no second recovery
        self._recovered("reconcile")
        return "reconcile"

    def _give_up(self, sub_id: str, first: int, last: int) -> None:
        with self._lock:
            sub = self._subs.get(sub_id)
            if sub is not None:
                sub.mark_done(range(first, last + 1))

    def _recovered(self, via: str) -> None:
        if self._metrics is not None:
            self._metrics.notification_recoveries.labels(via).inc()

    def _note_status(self, sub_id: str, sub: _Tracked | None, status: str | None) -> None:
        """`error` from the server: a WARNING and the gauge, once per change (not an outage)."""
        if status is None:
            return
        if sub is None:
            with self._lock:
                sub = self._subs.setdefault(sub_id, _Tracked(heard=self._clock()))
                return self._note_status_locked(sub_id, sub, status)
        self._note_status_locked(sub_id, sub, status)

    def _note_status_locked(self, sub_id: str, sub: _Tracked, status: str) -> None:
        in_error = status == "error"
        if in_error and not sub.in_error:
            log.warning("FHIR subscription in error", extra={"subscription": sub_id})
        sub.in_error = in_error
        if self._metrics is not None:
            self._metrics.subscriptions_in_error.set(sum(s.in_error for s in self._subs.values()))

    # --- plumbing ---------------------------------------------------------------------------

    def _background(self, job: Callable[[], object]) -> object:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="carecoord-recovery")
            pool = self._pool

        def run() -> None:
            try:
                job()
            except Exception as exc:  # a recovery never takes the endpoint down
                log.error("notification recovery failed", extra={"error": type(exc).__name__})

        return pool.submit(run)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
