"""Prometheus metrics for the consumer, fed through the runtime's observer hooks.

Each `ServiceMetrics` owns its own registry, so several services (or tests) in one process never
collide. Labels carry topics, partitions, event types, handler names and error types: no ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ReconcileMetrics", "ServiceMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _tp(tp: Any) -> tuple[str, str]:
    """(topic, partition) labels from a TP / kafka TopicPartition / (topic, partition) tuple."""
    topic = getattr(tp, "topic", None)
    partition = getattr(tp, "partition", None)
    if topic is None or partition is None:
        topic, partition = tp
    return str(topic), str(partition)


class ServiceMetrics:
    """A RuntimeObserver that records Prometheus metrics, plus a per-handler latency hook."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        tp = ["topic", "partition"]
        self.consumed = Counter(
            "carecoord_events_consumed", "Records taken from the input topic.", tp, registry=r
        )
        self.processed = Counter(
            "carecoord_events_processed",
            "Events whose effects are durable (offset done).",
            [*tp, "event_type"],
            registry=r,
        )
        self.failed = Counter(
            "carecoord_events_failed",
            "Processing attempts that raised, by error type (retried or dead-lettered).",
            [*tp, "error_type"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "carecoord_events_dead_lettered",
            "Events written to the dead-letter topic, by error type.",
            [*tp, "error_type"],
            registry=r,
        )
        self.retries = Counter(
            "carecoord_event_retries", "Retries after a transient failure.", tp, registry=r
        )
        self.in_flight_gauge = Gauge(
            "carecoord_events_in_flight", "Events being processed now.", registry=r
        )
        self.lag_gauge = Gauge(
            "carecoord_consumer_lag", "Records behind the partition's end.", tp, registry=r
        )
        self.dependency_up = Gauge(
            "carecoord_dependency_up",
            "1 while the dependency (fhir, kafka) answers, 0 during an outage.",
            ["dependency"],
            registry=r,
        )
        self.dependency_outages = Counter(
            "carecoord_dependency_outages",
            "Times the dependency became unavailable (consumption paused until it answered).",
            ["dependency"],
            registry=r,
        )
        self.dependency_down_seconds = Gauge(
            "carecoord_dependency_down_seconds",
            "Seconds since the dependency's current outage began; 0 while it answers.",
            ["dependency"],
            registry=r,
        )
        self.event_seconds = Histogram(
            "carecoord_event_processing_seconds",
            "Time from start of processing to offset done, by event type.",
            ["event_type"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.handler_seconds = Histogram(
            "carecoord_handler_seconds",
            "Time one handler took to compute its effects.",
            ["handler"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.reconcile = ReconcileMetrics(r)

        # FHIR Subscriptions (carecoord.service.subscription_watch): no subscription ids
        self.notifications_received = Counter(
            "carecoord_notifications_received",
            "FHIR notifications accepted, by type (handshake, heartbeat, event-notification, "
            "query-event; resource: a criteria-based bare resource).",
            ["type"],
            registry=r,
        )
        self.notification_duplicates = Counter(
            "carecoord_notification_duplicates_dropped",
            "Event notifications whose event numbers were all processed already (not re-read).",
            registry=r,
        )
        self.notification_gaps = Counter(
            "carecoord_notification_gaps",
            "Jumps in a subscription's event numbers (notifications lost): recovery started.",
            registry=r,
        )
        self.heartbeats_missed = Counter(
            "carecoord_subscription_heartbeats_missed",
            "Subscriptions silent (no heartbeat, no event) for twice their heartbeat period.",
            registry=r,
        )
        self.subscriptions_in_error = Gauge(
            "carecoord_subscriptions_in_error",
            "carecoord's Subscriptions the FHIR server last reported in status error.",
            registry=r,
        )
        self.notification_recoveries = Counter(
            "carecoord_notification_recoveries",
            "Recoveries of missed notifications, by how: events ($events), reconcile (the "
            "poller asked), none (nothing was missing).",
            ["via"],
            registry=r,
        )

    # RuntimeObserver ---------------------------------------------------------------------------

    def on_consumed(self, tp: Any) -> None:
        self.consumed.labels(*_tp(tp)).inc()

    def on_processed(self, tp: Any, event_type: str, seconds: float) -> None:
        self.processed.labels(*_tp(tp), event_type).inc()
        self.event_seconds.labels(event_type).observe(seconds)

    def on_failed(self, tp: Any, error_type: str) -> None:
        self.failed.labels(*_tp(tp), error_type).inc()

    def on_dead_lettered(self, tp: Any, error_type: str) -> None:
        self.dead_lettered.labels(*_tp(tp), error_type).inc()

    def on_retry(self, tp: Any) -> None:
        self.retries.labels(*_tp(tp)).inc()

    def in_flight(self, n: int) -> None:
        self.in_flight_gauge.set(n)

    def lag(self, tp: Any, n: int) -> None:
        self.lag_gauge.labels(*_tp(tp)).set(n)

    def watch_down_seconds(self, name: str, down_seconds: Callable[[], float]) -> None:
        """Read the outage's length at scrape time (Availability.down_seconds)."""
        self.dependency_down_seconds.labels(name).set_function(down_seconds)

    def on_dependency(self, name: str, up: bool) -> None:
        """Availability's on_change hook."""
        self.dependency_up.labels(name).set(1 if up else 0)
        if not up:
            self.dependency_outages.labels(name).inc()

    # Handler latency (HandlerProcessor's observe_handler) ---------------------------------------

    def observe_handler(self, handler: str, seconds: float) -> None:
        self.handler_seconds.labels(handler).observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


# The reconciling poller (carecoord.service.reconcile) ------------------------------------------


class ReconcileMetrics:
    """The poller's metrics, in the service's registry: labels are query names, resource types
    and error types."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.polls = Counter(
            "carecoord_reconcile_polls", "Polls run by this instance (while it leads).", registry=r
        )
        self.errors = Counter(
            "carecoord_reconcile_poll_errors",
            "Polls of a followed query that failed (retried at the next interval), by error type.",
            ["query", "error_type"],
            registry=r,
        )
        self.poller_only = Counter(
            "carecoord_reconcile_changes_poller_only",
            "Changed resource versions with events that no notification had brought.",
            ["resource_type"],
            registry=r,
        )
        self.lag = Gauge(
            "carecoord_reconcile_lag_seconds",
            "Seconds between now and the query's cursor (the server's newest change seen).",
            ["query"],
            registry=r,
        )
