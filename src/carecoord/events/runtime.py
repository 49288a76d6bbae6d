"""The event runtime: poll loop, per-key ordering, retries, dead letters, commits, shutdown.

Threads: the poll loop (the thread calling `run`) owns the consumer: it polls, applies rebalances,
pauses/resumes, and commits. Worker threads (`max_in_flight` of them) run the processor, produce
emitted events and dead letters. Shared state (offset windows, key queues, retry timers) is under
one lock.

Workers pull from the key scheduler themselves, a small batch of ready items of distinct keys at
a time when items complete fast: a thread hand-off per event would cost more than a no-op event
(see `_batch_size`). A batch whose current item runs long gives its unstarted items back (the poll
loop does it, `_reclaim_stalled`), so a slow key holds other keys up only briefly.

Delivery (docs/architecture.md): an offset is done only after the processor returned
(FHIR effects durable) and its emitted events were acknowledged, or after its dead letter was
acknowledged. Commits are the highest contiguous done offset + 1 with that record's leader epoch.

An emitted event of an inbound catalog type (e.g. the assessments handler's
carecoord.clinical.question) is a follow-up for another care domain: it is produced to the input
topic, where that domain's handler takes it, instead of the outbound topic.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import math
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

from carecoord.core import log_context, tracing
from carecoord.core.catalog import INBOUND, known_type
from carecoord.core.effects import Emit
from carecoord.core.envelope import CloudEvent
from carecoord.errors import CarecoordError, EventError, MalformedEvent
from carecoord.events.availability import Availability
from carecoord.events.broker import (
    TP,
    Broker,
    BrokerError,
    Consumer,
    KafkaBroker,
    KafkaConnection,
    Producer,
    Record,
)
from carecoord.events.dlq import write_dead_letter
from carecoord.events.ordering import Failure, KeyScheduler, OffsetWindow, WorkItem
from carecoord.events.producer import EventProducer

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Public interfaces


class EventProcessor(Protocol):
    """Applies one event. FHIR effects are durable when `process` returns; the runtime then
    produces the returned emits and marks the offset done.

    Raise an error with `transient = True` to retry; a permanent `EventError` (e.g. MalformedEvent)
    or a non-transient FhirError to dead-letter. Anything else is retried, then dead-lettered.
    """

    def process(self, event: CloudEvent) -> Sequence[Emit]: ...


class RuntimeObserver(Protocol):
    def on_consumed(self, tp: TP) -> None: ...

    def on_processed(self, tp: TP, event_type: str, seconds: float) -> None: ...

    def on_failed(self, tp: TP, error_type: str) -> None: ...

    def on_dead_lettered(self, tp: TP, error_type: str) -> None: ...

    def on_retry(self, tp: TP) -> None: ...

    def in_flight(self, n: int) -> None: ...

    def lag(self, tp: TP, n: int) -> None: ...


class NoopObserver:
    def on_consumed(self, tp: TP) -> None:
        pass

    def on_processed(self, tp: TP, event_type: str, seconds: float) -> None:
        pass

    def on_failed(self, tp: TP, error_type: str) -> None:
        pass

    def on_dead_lettered(self, tp: TP, error_type: str) -> None:
        pass

    def on_retry(self, tp: TP) -> None:
        pass

    def in_flight(self, n: int) -> None:
        pass

    def lag(self, tp: TP, n: int) -> None:
        pass


# Poll timeout while backpressure has paused a partition and work is in flight.
_PAUSED_POLL_SECONDS = 0.005
# A worker takes up to this many ready items (distinct keys) at once, sized so that a batch takes
# about _BATCH_SECONDS at the recent per-item pace: fast items share one thread hand-off, slow
# ones (FHIR writes) go one per worker so they run concurrently.
_MAX_BATCH = 256
_BATCH_SECONDS = 0.005
# A batch whose current item has run this long gives its unstarted items back to other workers.
_RECLAIM_AFTER_SECONDS = 0.05


class TransientError(CarecoordError):
    """Raise from a processor for a failure worth retrying."""

    transient = True


@dataclass
class RuntimeOptions:
    """How the runtime consumes: topics, group, concurrency, retries, timings. The Kafka client
    settings are `kafka`, a `KafkaConnection` (not copied here: one setting, one place)."""

    topic_in: str = "carecoord.events"
    topic_out: str = "carecoord.outbound"
    topic_dlq: str = "carecoord.dlq"
    group_id: str = "carecoord"
    event_source: str = "urn:carecoord"
    max_in_flight: int = 16  # events processed concurrently (worker threads), across keys
    max_in_flight_per_partition: int = 500  # fetched-not-committable records before pause()
    max_poll_records: int = 500
    retry_budget_seconds: float = 30.0  # per event; well under max_poll_interval_ms
    backoff_base_seconds: float = 0.2
    backoff_max_seconds: float = 10.0
    shutdown_drain_seconds: float = (
        30.0  # a pod's grace period must exceed it (the k8s example: 45)
    )
    rebalance_drain_seconds: float = 5.0
    poll_timeout_seconds: float = 0.2
    commit_interval_seconds: float = 1.0
    # Create missing topics with this many partitions at start (None: leave it to the cluster).
    create_topics_partitions: int | None = None
    produce_timeout_seconds: float = 30.0
    # The Kafka clients' settings: connection, security, group timeouts, request and fetch sizes.
    kafka: KafkaConnection = field(default_factory=KafkaConnection)

    def __post_init__(self) -> None:
        if self.retry_budget_seconds * 1000 >= self.kafka.max_poll_interval_ms:
            # We keep polling while retrying, but a budget this long means a single event can
            # hold its partition's commit back for longer than the group expects progress.
            log.warning("retry budget is not well under max_poll_interval_ms")


# ---------------------------------------------------------------------------------------------
# Failure classification


def classify(exc: BaseException) -> Failure:
    """Map an exception to a PHI-free failure (the contract is drawn in carecoord/errors.py).

    - `unavailable` (a dependency is down: FHIR 5xx/429/unreachable, broker unreachable): an
      outage; retried once the dependency answers again, never dead-lettered for it;
    - `transient` or `rerun` (e.g. a version conflict): retried within the budget;
    - any other carecoord error (MalformedEvent, HandlerError, ConfigError, FHIR 4xx): permanent;
    - anything unexpected: retried within the budget, then dead-lettered under its type name.
    """
    name = type(exc).__name__
    hint = getattr(exc, "retry_after", None)
    retry_after = float(hint) if isinstance(hint, int | float) else None
    if not isinstance(exc, CarecoordError):
        return Failure(name, _safe_message(exc), permanent=False, retry_after=retry_after)
    if exc.unavailable:
        return Failure(
            name,
            _safe_message(exc),
            permanent=False,
            retry_after=retry_after,
            outage=exc.dependency,
            declared=exc.declared_unavailable,
        )
    if exc.transient or exc.rerun:
        return Failure(name, _safe_message(exc), permanent=False, retry_after=retry_after)
    if isinstance(exc, EventError):
        return Failure(name, _safe_message(exc), permanent=exc.permanent)
    return Failure(name, _safe_message(exc), permanent=True)


def _safe_message(exc: BaseException) -> str:
    # carecoord's errors are written to be PHI-free; arbitrary exceptions' text is not trusted.
    if isinstance(exc, CarecoordError):
        return str(exc)
    return f"unexpected {type(exc).__name__}"


@dataclass
class _Retry:
    due: float
    seq: int
    item: WorkItem = field(compare=False)

    def __lt__(self, other: _Retry) -> bool:
        return (self.due, self.seq) < (other.due, other.seq)


class _Worker:
    """One worker thread's batch: items to run (taken from the left by the worker, reclaimed from
    the right by the poll loop: deque ends are atomic) and items done but not yet finished."""

    __slots__ = ("batch", "done", "started")

    def __init__(self) -> None:
        self.batch: deque[WorkItem] = deque()
        self.done: deque[WorkItem] = deque()
        self.started = 0.0  # monotonic start of the item running now; 0.0 between items


class _Listener:
    """Records assignment changes from the consumer's IO thread; the poll loop applies them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[str, set[TP]]] = []

    def on_assigned(self, partitions: set[TP]) -> None:
        with self._lock:
            self._events.append(("assigned", set(partitions)))

    def on_revoked(self, partitions: set[TP]) -> None:
        with self._lock:
            self._events.append(("revoked", set(partitions)))

    def on_lost(self, partitions: set[TP]) -> None:
        with self._lock:
            self._events.append(("lost", set(partitions)))

    def take(self) -> list[tuple[str, set[TP]]]:
        with self._lock:
            events, self._events = self._events, []
        return events


# ---------------------------------------------------------------------------------------------
# The runtime


class EventRuntime:
    def __init__(
        self,
        processor: EventProcessor,
        options: RuntimeOptions | None = None,
        *,
        broker: Broker | None = None,
        observer: RuntimeObserver | None = None,
        dependencies: Sequence[Availability] = (),
    ) -> None:
        """`dependencies`: what the processor and the producer need ("fhir", "kafka"). While one
        is down no new work starts and every partition is paused (see availability.py)."""
        self.processor = processor
        # Event types the processor handles are not free text: they may be logged and traced.
        self._handled_types = frozenset(getattr(processor, "event_types", ()))
        self.options = options or RuntimeOptions()
        self.dependencies = {d.name: d for d in dependencies}
        self._outage_paused = False
        self.broker: Broker = broker or KafkaBroker(self.options.kafka)
        self.observer: RuntimeObserver = observer or NoopObserver()
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._listener = _Listener()
        self._windows: dict[TP, OffsetWindow] = {}
        self._scheduler = KeyScheduler()
        self._retries: list[_Retry] = []
        self._seq = itertools.count()
        self._incarnations = itertools.count(1)
        self._in_flight = 0
        self._draining = False  # committing what is done before a rebalance
        # Revoked by the group but possibly coming back in the same rebalance (eager protocol):
        # their windows, queues and retries are kept, and no new work starts, until the new
        # assignment says whether they stay with us or go.
        self._revoking: set[TP] = set()
        self._rebalance_prepared = False
        self._joined = False
        self._running = False
        self._last_poll = 0.0
        self._last_commit = 0.0
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._events_out: EventProducer | None = None
        self._events_in: EventProducer | None = None
        self._workers: list[_Worker] = []
        self._work_ready = threading.Condition(self._lock)
        self._idle_workers = 0
        self._busy_workers = 0
        self._closing = False  # worker threads exit
        self._item_seconds: float | None = None  # recent wall time per item (moving average)

    @property
    def _holding(self) -> bool:
        """No new work starts: shutting down, draining before a rebalance, mid-rebalance, or a
        dependency is down."""
        return self._stop.is_set() or self._draining or bool(self._revoking) or self._outage

    @property
    def _outage(self) -> bool:
        deps = self.dependencies  # asked per event (`_holding`): most runtimes have none
        return bool(deps) and any(not d.up for d in deps.values())

    def _outage_seconds(self) -> float:
        return sum(d.confirmed_down_seconds() for d in self.dependencies.values())

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Joined the group (has had an assignment, possibly empty) and the poll loop is alive."""
        stale = self.options.kafka.max_poll_interval_ms / 1000 / 2
        return self._running and self._joined and (time.monotonic() - self._last_poll) < stale

    def request_stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """Stop gracefully on SIGTERM/SIGINT (call from the main thread)."""

        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("signal received; stopping", extra={"signal": signum})
            self.request_stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until `stop` is set, `request_stop()` is called, or a signal handler fires."""
        self._start()
        try:
            while not self._stop.is_set() and not (stop is not None and stop.is_set()):
                self._guarded_iteration()
        finally:
            self._shutdown()

    def run_until_idle(self, timeout: float = 30.0, idle_seconds: float = 0.3) -> bool:
        """For tests: consume until nothing is pending for `idle_seconds` (or `timeout`), then
        shut down gracefully. Returns True if it went idle before the timeout."""
        self._start()
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        went_idle = False
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                got = self._guarded_iteration()
                if got or not self._joined or not self._quiet():
                    idle_since = None
                    continue
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= idle_seconds:
                    went_idle = True
                    break
        finally:
            self._shutdown()
        return went_idle

    def _quiet(self) -> bool:
        with self._lock:
            return (
                self._in_flight == 0
                and not self._revoking
                and self._scheduler.queued == 0
                and not self._retries
                and all(w.pending == 0 and w.to_commit() is None for w in self._windows.values())
            )

    def _start(self) -> None:
        o = self.options
        if not self._connect():
            return
        assert self._producer is not None and self._consumer is not None
        self._events_out = EventProducer(self._producer, o.topic_out, source=o.event_source)
        self._events_in = EventProducer(self._producer, o.topic_in, source=o.event_source)
        self._consumer.subscribe([o.topic_in], self._listener)
        self._closing = False
        self._workers = [_Worker() for _ in range(max(1, o.max_in_flight))]
        for i, worker in enumerate(self._workers):
            name = f"cc-work_{i}"
            threading.Thread(target=self._worker_loop, args=(worker,), name=name).start()
        self._running = True
        self._last_poll = time.monotonic()
        log.info("event runtime started", extra={"topic": o.topic_in, "group": o.group_id})

    def _connect(self) -> bool:
        """Connect to the broker, retrying an unreachable one with backoff (capped at
        `backoff_max_seconds`) until it answers or a stop is requested (then False)."""
        o = self.options
        failures = 0
        while True:
            try:
                if o.create_topics_partitions:
                    n = o.create_topics_partitions
                    self.broker.ensure_topics({o.topic_in: n, o.topic_out: n, o.topic_dlq: n})
                self._producer = self._producer or self.broker.producer()
                self._consumer = self.broker.consumer(o.group_id)
                return True
            except BrokerError as exc:
                if not exc.transient:
                    raise
                failures += 1
                ceiling = min(o.backoff_max_seconds, o.backoff_base_seconds * 2.0**failures)
                delay = ceiling / 2 + random.uniform(0, ceiling / 2)
                log.warning(
                    "broker unreachable; retrying",
                    extra={"error": exc.message, "attempt": failures, "retry_in": round(delay, 1)},
                )
                if self._stop.wait(delay):
                    return False

    # -- the poll loop -----------------------------------------------------------------------

    def _guarded_iteration(self) -> int:
        try:
            return self._iteration()
        except Exception:
            # The loop must outlive surprises: nothing is marked done by it, so nothing is lost.
            log.exception("poll loop iteration failed; continuing")
            self._stop.wait(self.options.poll_timeout_seconds)
            return 0

    def _iteration(self) -> int:
        consumer = self._require_consumer()
        if consumer.rebalance_pending():
            if not self._rebalance_prepared:
                self._rebalance_prepared = True
                self._before_rebalance()
        else:
            self._rebalance_prepared = False
        self._apply_outage()
        self._await_capacity()
        self._apply_backpressure()  # resume what the workers caught up on before fetching
        try:
            records = consumer.poll(self._poll_timeout(), self.options.max_poll_records)
        except BrokerError as exc:
            log.warning("poll failed; retrying", extra={"error": type(exc).__name__})
            records = []
            self._stop.wait(min(1.0, self.options.poll_timeout_seconds))
        self._last_poll = time.monotonic()
        self._apply_rebalance()
        if records:
            self._accept_all(records)
        self._fire_due_retries()
        self._dispatch()
        self._reclaim_stalled()
        self._apply_backpressure()
        if time.monotonic() - self._last_commit >= self.options.commit_interval_seconds:
            self._commit()
        return len(records)

    def _await_capacity(self) -> None:
        """Every partition is paused by backpressure: wait for the workers to bring one back under
        the resume mark (they signal each finished batch) instead of sleeping in poll(), which
        nothing would cut short. Bounded by the poll timeout and the next retry, so rebalances,
        retries and stop requests are seen as promptly as in a poll."""
        resume_below = max(1, self.options.max_in_flight_per_partition // 2)
        deadline = time.monotonic() + self._poll_timeout(paused_timeout=None)
        with self._lock:
            windows = self._windows.values()
            while (
                (self._in_flight or self._scheduler.queued)
                and windows
                and all(w.paused and w.pending >= resume_below for w in windows)
                and not self._stop.is_set()
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._idle.wait(remaining)

    def _poll_timeout(self, paused_timeout: float | None = _PAUSED_POLL_SECONDS) -> float:
        timeout = self.options.poll_timeout_seconds
        with self._lock:
            if self._retries and not self._holding:
                timeout = min(timeout, max(0.0, self._retries[0].due - time.monotonic()))
            if (
                paused_timeout is not None
                and (self._in_flight or self._scheduler.queued)
                and any(w.paused for w in self._windows.values())
            ):
                # A paused partition is resumed by this loop once its workers catch up, which
                # takes milliseconds; sitting in poll() for the full timeout would idle them.
                timeout = min(timeout, paused_timeout)
        return timeout

    def _require_consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("runtime not started")
        return self._consumer

    def _accept_all(self, records: Sequence[Record]) -> None:
        # The per-record hot path of the poll loop: one lock round trip per poll.
        on_consumed = self.observer.on_consumed
        add = self._scheduler.add
        tp: TP | None = None
        window: OffsetWindow | None = None
        with self._lock:
            stopping = self._stop.is_set()
            for record in records:
                if tp is None or record.partition != tp[1] or record.topic != tp[0]:
                    tp = record.tp
                    window = self._windows.get(tp)
                    if window is None:
                        # A poll returned records before (or without) an assignment callback.
                        window = self._windows[tp] = OffsetWindow(tp, next(self._incarnations))
                        self._joined = True
                on_consumed(tp)
                assert window is not None
                if not stopping and window.add(record):
                    add(WorkItem(record, window.incarnation, tp=tp))

    def _dispatch(self) -> None:
        """Wake as many idle workers as the ready items need: about one per _BATCH_SECONDS of
        work at the recent per-item pace (a woken worker keeps taking batches while any are
        ready), so fast items do not wake threads that would only contend for the GIL."""
        with self._lock:
            ready = self._scheduler.ready
            if not ready or not self._idle_workers or self._holding:
                return
            per_item = self._item_seconds
            wanted = ready if per_item is None else math.ceil(ready * per_item / _BATCH_SECONDS)
            self._work_ready.notify(min(self._idle_workers, max(1, wanted)))

    def _batch_size(self) -> int:
        per_item = self._item_seconds
        if per_item is None:
            return 1
        return max(1, min(_MAX_BATCH, int(_BATCH_SECONDS / max(per_item, 1e-6))))

    def _reclaim_stalled(self) -> None:
        """Give other workers the unstarted items of batches stuck behind a long-running item,
        and finish the ones such a batch already completed (their keys' next items may start)."""
        now = time.monotonic()
        reclaimed = False
        with self._lock:
            for worker in self._workers:
                started = worker.started
                if started and now - started > _RECLAIM_AFTER_SECONDS:
                    if worker.batch:
                        reclaimed = self._give_back(worker) > 0 or reclaimed
                    if worker.done:
                        self._finish_done(worker)
        if reclaimed:
            self._dispatch()

    def _fire_due_retries(self) -> None:
        now = time.monotonic()
        with self._lock:
            while self._retries and self._retries[0].due <= now and not self._holding:
                item = heapq.heappop(self._retries).item
                window = self._windows.get(item.tp)
                if window is None or window.incarnation != item.incarnation:
                    self._scheduler.release(item.key)  # partition revoked meanwhile
                    continue
                self.observer.on_retry(item.tp)
                self._scheduler.untake(item)  # at the head of its key's queue

    def _apply_outage(self) -> None:
        """Pause every partition while a dependency is down (the consumer keeps polling, so the
        group keeps us), and give them back to backpressure's control once all are up."""
        down = self._outage
        if down == self._outage_paused:
            return
        self._outage_paused = down
        if down:
            with self._lock:
                partitions = sorted(self._windows)
            if partitions:
                self._require_consumer().pause(partitions)
            log.warning("a dependency is down: consumption paused")
        else:
            self._sync_pause()
            log.info("dependencies up: consumption resumed")

    def _apply_backpressure(self) -> None:
        consumer = self._require_consumer()
        limit = self.options.max_in_flight_per_partition
        to_pause: list[TP] = []
        to_resume: list[TP] = []
        with self._lock:
            for tp, window in self._windows.items():
                if not window.paused and window.pending >= limit:
                    window.paused = True
                    to_pause.append(tp)
                elif window.paused and window.pending < max(1, limit // 2):
                    window.paused = False
                    to_resume.append(tp)
        if self._outage_paused:
            to_resume = []  # stays paused for the outage; _apply_outage resumes it
        if to_pause:
            log.info("pausing partitions", extra={"partitions": [str(t) for t in to_pause]})
            consumer.pause(to_pause)
        if to_resume:
            log.info("resuming partitions", extra={"partitions": [str(t) for t in to_resume]})
            consumer.resume(to_resume)

    def _commit(self) -> None:
        consumer = self._require_consumer()
        self._last_commit = time.monotonic()
        # Only partitions the consumer owns and that are not mid-rebalance: Kafka checks the
        # member's generation, not partition ownership, so a stray commit would silently move
        # another member's position.
        owned = consumer.assignment()
        with self._lock:
            offsets = {
                tp: c
                for tp, w in self._windows.items()
                if tp in owned and tp not in self._revoking and (c := w.to_commit()) is not None
            }
        if offsets:
            try:
                consumer.commit(offsets)
            except BrokerError as exc:
                log.warning("commit failed; will retry", extra={"error": type(exc).__name__})
                return
            with self._lock:
                for tp, c in offsets.items():
                    w = self._windows.get(tp)
                    if w is not None:
                        w.committed = c
            log.debug(
                "committed", extra={"offsets": {str(t): c.offset for t, c in offsets.items()}}
            )
        with self._lock:
            windows = [(tp, w.committed, w.lowest_pending) for tp, w in self._windows.items()]
        for tp, committed, _ in windows:
            high = consumer.highwater(tp)
            if high is not None and committed is not None:
                self.observer.lag(tp, max(0, high - committed.offset))

    # -- rebalances --------------------------------------------------------------------------

    def _before_rebalance(self) -> None:
        """The group is rebalancing: let in-flight work finish (briefly) and commit it while we
        still own the partitions, so the next owner does not redo it."""
        deadline = time.monotonic() + self.options.rebalance_drain_seconds
        with self._lock:
            self._draining = True
            try:
                while self._in_flight and time.monotonic() < deadline:
                    self._idle.wait(max(0.0, min(0.1, deadline - time.monotonic())))
            finally:
                self._draining = False
        self._commit()

    def _apply_rebalance(self) -> None:
        """Apply the assignment changes the listener recorded during the last poll.

        A revoked partition is not forgotten at once: under the eager protocol every partition is
        revoked at the start of a rebalance and most come back to the same member. kafka-python 3
        then keeps the partition's fetch position (and paused flag) instead of going back to the
        committed offset, so records this runtime had fetched but not finished would never be
        fetched again if it dropped them. It keeps them instead, holds new work until the new
        assignment is known, and forgets only the partitions that really went.
        """
        consumer = self._require_consumer()
        assigned_now = False
        for kind, partitions in self._listener.take():
            names = sorted(map(str, partitions))
            if kind == "revoked":
                with self._lock:
                    self._revoking |= partitions & self._windows.keys()
                log.info("partitions revoked", extra={"partitions": names})
            elif kind == "lost":  # not ours any more, maybe for a while: others own them now
                self._forget(partitions)
                log.info("partitions lost", extra={"partitions": names})
            else:
                with self._lock:
                    self._joined = True
                    kept = self._revoking & partitions
                    self._revoking -= partitions
                    for tp in partitions:
                        if tp not in self._windows:
                            self._windows[tp] = OffsetWindow(tp, next(self._incarnations))
                assigned_now = True
                log.info(
                    "partitions assigned",
                    extra={"partitions": names, "kept": sorted(map(str, kept))},
                )
        if self._revoking:
            # A revoked partition the consumer no longer holds went to another member.
            gone = self._revoking - consumer.assignment()
            if gone:
                self._forget(gone)
        if assigned_now:
            self._sync_pause()

    def _sync_pause(self) -> None:
        """Make the consumer's paused flags match the windows after an assignment: clients
        differ in whether a partition kept across a rebalance stays paused, and one left paused
        with nothing pending would never be fetched again."""
        consumer = self._require_consumer()
        with self._lock:
            hold = self._stop.is_set() or self._outage_paused
            paused = [t for t, w in self._windows.items() if w.paused or hold]
            fetching = [t for t in self._windows if t not in paused]
        if paused:
            consumer.pause(paused)
        if fetching:
            consumer.resume(fetching)

    def _forget(self, partitions: set[TP]) -> None:
        """Stop work for partitions we no longer own: drop queued records and pending retries.
        In-flight ones finish (they are idempotent) but no longer count toward commits."""
        with self._lock:
            self._revoking -= partitions
            for tp in partitions:
                self._windows.pop(tp, None)
                dropped = self._scheduler.drop_partition(tp)
                if dropped:
                    log.info("dropped queued records", extra={"partition": str(tp), "n": dropped})
            kept = [r for r in self._retries if r.item.tp not in partitions]
            for r in self._retries:
                if r.item.tp in partitions:
                    self._scheduler.release(r.item.key)
            self._retries = kept
            heapq.heapify(self._retries)

    # -- shutdown ----------------------------------------------------------------------------

    def _shutdown(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        log.info("event runtime stopping: draining in-flight work")
        self._stop.set()
        with self._lock:
            queued = self._scheduler.drop_all()
            waiting = list(self._retries)
            self._retries.clear()
            for r in waiting:
                self._scheduler.release(r.item.key)
        if queued or waiting:
            log.info("not started; will be redelivered", extra={"n": queued + len(waiting)})
        try:
            consumer.pause(sorted(consumer.assignment()))
        except Exception:
            log.warning("pause on shutdown failed", exc_info=True)
        deadline = time.monotonic() + self.options.shutdown_drain_seconds
        while time.monotonic() < deadline:
            with self._lock:
                if not self._in_flight:
                    break
            try:  # keep heartbeating (and discard anything fetched)
                consumer.poll(0.1, 1)
            except BrokerError:
                time.sleep(0.1)
            self._apply_rebalance()
        with self._lock:
            leftover = self._in_flight
        if leftover:
            log.warning("shutdown drain timed out; in-flight events will be redelivered")
        self._commit()
        self._running = False
        with self._lock:
            self._closing = True
            self._work_ready.notify_all()
        consumer.close()
        if self._producer is not None:
            self._producer.close()
        self._consumer = None
        log.info("event runtime stopped")

    # -- worker side -------------------------------------------------------------------------

    def _worker_loop(self, worker: _Worker) -> None:
        while True:
            with self._lock:
                while not self._take_batch(worker):
                    if self._closing:
                        return
                    self._idle_workers += 1
                    try:
                        self._work_ready.wait()
                    finally:
                        self._idle_workers -= 1
            self._run_batch(worker)

    def _take_batch(self, worker: _Worker) -> bool:
        # Called with the lock held. Items of one batch have distinct keys (a taken key is busy).
        if self._holding or self._closing:
            return False
        size = self._batch_size()
        take = self._scheduler.take
        batch = worker.batch
        while len(batch) < size:
            item = take()
            if item is None:
                break
            batch.append(item)
        if not batch:
            return False
        self._in_flight += len(batch)
        self._busy_workers += 1
        self.observer.in_flight(self._busy_workers)
        return True

    def _run_batch(self, worker: _Worker) -> None:
        batch = worker.batch
        first = time.monotonic()
        recording = tracing.recording()
        n = 0
        try:
            while True:
                try:
                    item = batch.popleft()
                except IndexError:
                    break
                if n and self._holding:  # stopping or rebalancing: start nothing new
                    batch.appendleft(item)
                    with self._lock:
                        self._give_back(worker)
                    break
                worker.started = time.monotonic()
                n += 1
                self._work(item, worker.done, recording)
        finally:
            worker.started = 0.0
            with self._lock:
                self._busy_workers -= 1
                self._finish_done(worker)
                self.observer.in_flight(self._busy_workers)  # also when nothing was "done"
        if n:
            sample = (time.monotonic() - first) / n
            recent = self._item_seconds
            self._item_seconds = sample if recent is None else 0.8 * recent + 0.2 * sample

    def _give_back(self, worker: _Worker) -> int:
        # Called with the lock held: unstarted items go back to their keys' queues (or, when
        # stopping, are dropped for redelivery).
        n = 0
        while True:
            try:
                item = worker.batch.pop()
            except IndexError:
                break
            n += 1
            if self._stop.is_set():
                self._scheduler.release(item.key)
            else:
                self._scheduler.untake(item)
        if n:
            self._in_flight -= n
            self._idle.notify_all()
        return n

    def _finish_done(self, worker: _Worker) -> None:
        # Called with the lock held: mark the worker's processed items done, free their keys.
        done = worker.done
        if not done:
            return
        windows = self._windows
        release = self._scheduler.release
        n = 0
        while True:
            try:
                item = done.popleft()
            except IndexError:
                break
            n += 1
            window = windows.get(item.tp)
            if window is not None and window.incarnation == item.incarnation:
                window.mark_done(item.record.offset)
            release(item.key)
        self._in_flight -= n
        self.observer.in_flight(self._busy_workers)
        self._idle.notify_all()

    def _work(self, item: WorkItem, done: deque[WorkItem], recording: bool) -> None:
        try:
            if self._attempt(item, recording):
                done.append(item)
        except BaseException:  # never lose track of an item, whatever happened
            with log_context.bind(**_record_fields(item.record)):
                log.exception("worker failed unexpectedly; retrying")
            self._schedule_retry(item, self._backoff(item))

    def _attempt(self, item: WorkItem, recording: bool) -> bool:
        """Process one item; True if it succeeded and is to be finished with its batch (failures
        are retried or dead-lettered here). `recording`: whether spans are recorded (checked
        once per batch: the check is not free when opentelemetry is installed without an SDK)."""
        record = item.record
        if item.dead_letter is not None:
            with log_context.bind(**_record_fields(record)):
                self._dead_letter(item, item.dead_letter)
            return False
        started = time.monotonic()
        event: CloudEvent | None = None
        try:
            event = CloudEvent.from_json_bytes(record.value)
        except Exception as exc:
            malformed: Failure | None = classify(exc)
        else:
            malformed = None
        if event is not None:
            event_type = self._loggable_type(event.type)
            event_id: str | None = event.id
            inbound: tuple[str | None, str | None] = (event.traceparent, event.tracestate)
        else:
            event_type = event_id = None
            inbound = (None, None)
        # One log-context bind per event (the record's and the event's fields together).
        with (
            log_context.bind(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                patient_id=_patient_field(record.key),
                event_id=event_id,
                event_type=event_type,
            ),
            tracing.span(
                f"process {record.topic}" if recording else "",
                "consumer",
                self._span_attributes(record, event_id, event_type) if recording else None,
                inbound=inbound,
                record=recording,
            ) as span,
        ):
            if malformed is not None:
                span.fail(malformed.error_type)
                self._failed(item, malformed)
                return False
            assert event is not None
            try:
                _check_key(record, event)
                emits = self.processor.process(event)
                if emits:
                    self._publish(emits)
            except Exception as exc:
                failure = classify(exc)
                span.fail(failure.error_type)
                self._failed(item, failure)
                return False
            self.observer.on_processed(item.tp, event.type, time.monotonic() - started)
            if log.isEnabledFor(logging.DEBUG):  # this is the per-event hot path
                log.debug("processed")
        return True

    def _publish(self, emits: Sequence[Emit]) -> None:
        # Follow-ups (inbound types) go to the input topic for the domain that handles them.
        assert self._events_out is not None and self._events_in is not None
        timeout = self.options.produce_timeout_seconds
        follow_ups = [e for e in emits if e.type in INBOUND]
        outbound = [e for e in emits if e.type not in INBOUND]
        if outbound:
            self._events_out.publish_emits(outbound, timeout)
        if follow_ups:
            self._events_in.publish_emits(follow_ups, timeout)

    def _loggable_type(self, event_type: str) -> str | None:
        # An event type outside the catalog and the processor's table may be free text (PHI).
        return event_type if event_type in self._handled_types else known_type(event_type)

    def _span_attributes(
        self, record: Record, event_id: str | None, event_type: str | None
    ) -> dict[str, tracing.AttributeValue | None]:
        # OpenTelemetry semantic conventions: messaging (Kafka) and CloudEvents attributes.
        return {
            "messaging.system": "kafka",
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.consumer.group.name": self.options.group_id,
            "messaging.kafka.offset": record.offset,
            "messaging.message.id": event_id,
            "cloudevents.event_id": event_id,
            "cloudevents.event_type": event_type,
        }

    def _failed(self, item: WorkItem, failure: Failure) -> None:
        now, mono = time.time(), time.monotonic()
        item.attempts += 1
        item.failure = failure
        if item.first_failure_mono is None:
            item.outage_seconds_at_first_failure = self._outage_seconds()
        item.first_failure = item.first_failure or now
        item.first_failure_mono = item.first_failure_mono or mono
        item.last_failure = now
        self.observer.on_failed(item.tp, failure.error_type)
        if failure.permanent:
            self._dead_letter(item, failure)
            return
        delay = self._backoff(item)
        dependency = self.dependencies.get(failure.outage or "")
        if dependency is not None:
            dependency.report_down(
                failure.error_type, failure.retry_after, confirmed=failure.declared
            )
        # Time the dependency was confirmed down is not this event's fault: it is not spent
        # from its budget, and an event is never dead-lettered while its dependency is down.
        outage = self._outage_seconds() - item.outage_seconds_at_first_failure
        elapsed = mono - item.first_failure_mono - outage
        confirmed = dependency is not None and dependency.confirmed_down
        if not confirmed and elapsed + delay > self.options.retry_budget_seconds:
            log.warning(
                "retry budget exhausted; dead-lettering",
                extra={"error": failure.error_type, "attempts": item.attempts},
            )
            self._dead_letter(item, failure)
            return
        log.info(
            "transient failure; will retry",
            extra={"error": failure.error_type, "attempt": item.attempts},
        )
        self._schedule_retry(item, delay)

    def _backoff(self, item: WorkItem) -> float:
        o = self.options
        ceiling = min(
            o.backoff_max_seconds, o.backoff_base_seconds * 2.0 ** max(0, item.attempts - 1)
        )
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        hint = item.failure.retry_after if item.failure is not None else None
        return max(delay, min(hint, o.backoff_max_seconds)) if hint is not None else delay

    def _dead_letter(self, item: WorkItem, failure: Failure) -> None:
        item.dead_letter = failure
        record = item.record
        now = time.time()
        try:
            assert self._producer is not None
            truncated = write_dead_letter(
                self._producer,
                record,
                self.options.topic_dlq,
                error_type=failure.error_type,
                message=failure.message,
                attempts=max(1, item.attempts),
                first_failure=item.first_failure or now,
                last_failure=item.last_failure or now,
                timeout=self.options.produce_timeout_seconds,
            )
        except BrokerError as exc:
            # The dead letter is not written: the offset must not be done. Retry, forever.
            log.error(
                "dead-letter write failed; will retry",
                extra={"error": type(exc).__name__},
            )
            kafka = self.dependencies.get("kafka")
            if kafka is not None and exc.unavailable:
                kafka.report_down(type(exc).__name__)
            self._schedule_retry(item, min(self.options.backoff_max_seconds, 1.0 + item.attempts))
            return
        log.warning(
            "dead-lettered",
            extra={"error": failure.error_type, "truncated": truncated},
        )
        tracing.set_attribute("carecoord.dead_lettered", True)
        self.observer.on_dead_lettered(item.tp, failure.error_type)
        self._finish(item)

    def _schedule_retry(self, item: WorkItem, delay: float) -> None:
        with self._lock:
            self._in_flight -= 1
            window = self._windows.get(item.tp)
            if self._stop.is_set() or window is None or window.incarnation != item.incarnation:
                self._scheduler.release(item.key)  # redelivered later (not committed)
            else:
                due = time.monotonic() + delay
                heapq.heappush(self._retries, _Retry(due, next(self._seq), item))
            self._idle.notify_all()

    def _finish(self, item: WorkItem) -> None:
        with self._lock:
            self._in_flight -= 1
            window = self._windows.get(item.tp)
            if window is not None and window.incarnation == item.incarnation:
                window.mark_done(item.record.offset)
            self._scheduler.release(item.key)
            self._idle.notify_all()


# The Kafka key as a log field (a regex match per event otherwise); keys repeat per patient.
_patient_field = functools.lru_cache(maxsize=4096)(log_context.patient_key)


def _record_fields(record: Record) -> dict[str, object]:
    """The log fields of a record whose event is not (or not yet) parsed."""
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "patient_id": log_context.patient_key(record.key),
    }


def _check_key(record: Record, event: CloudEvent) -> None:
    """Per-patient order rests on the Kafka key being the subject's patient id: an event under
    another patient's key would run concurrently with its own patient's events."""
    key, subject = record.key, event.subject
    # CloudEvent.key inline (per event): the id after "Patient/", if there is one.
    if key is None or not subject or len(subject) <= 8 or not subject.startswith("Patient/"):
        return
    if key != subject[8:].encode():
        raise MalformedEvent(
            "the Kafka key is not the subject's patient id (the catalog keys events by patient)",
            event_id=event.id,
        )
