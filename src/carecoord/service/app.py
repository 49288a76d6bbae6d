"""Wiring: settings -> FHIR client + handlers + processor + runtime + health server + periodic jobs.

`Service.run()` is what `carecoord run` does: serve /healthz /readyz /metrics, consume until
stopped (SIGTERM/SIGINT or `request_stop()`), drain, close. The FHIR server and the broker are
watched by `Availability` probes: nothing is processed until the FHIR server has answered once, and
an outage of either pauses consumption (and readiness) until it answers again.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import httpx

from carecoord.core.envelope import CloudEvent
from carecoord.errors import ConfigError
from carecoord.events.availability import Availability
from carecoord.events.broker import Broker, KafkaConnection, Producer
from carecoord.events.producer import EventProducer
from carecoord.events.runtime import EventRuntime, RuntimeOptions
from carecoord.fhir.auth import BearerToken, ClientCredentials, SmartBackendServices
from carecoord.fhir.capabilities import statement_of
from carecoord.fhir.client import FhirClient
from carecoord.fhir.errors import FhirError
from carecoord.fhir.subscriptions import JsonFhir
from carecoord.handlers.jobs import sweeper
from carecoord.handlers.loader import HandlerTable, load_handlers
from carecoord.handlers.notifications.encounters import DischargeMapping
from carecoord.handlers.notifications.referrals import translators
from carecoord.handlers.notifications.seen import SeenVersions
from carecoord.handlers.processing import HandlerProcessor, TransactionalFhir
from carecoord.handlers.referrals.handler import requester_problem
from carecoord.service.health import HealthServer
from carecoord.service.metrics import ServiceMetrics
from carecoord.service.notification_endpoint import NotificationEndpoint
from carecoord.service.notification_server import NotificationServer
from carecoord.service.reconcile import KafkaCursors, Reconciler, fhir_pages
from carecoord.service.subscription_watch import (
    ReconcileTrigger,
    SubscriptionWatch,
    WarningReconcileTrigger,
)
from carecoord.service.subscriptions import ensure as ensure_subscriptions
from carecoord.service.subscriptions import manager, specs_from_settings
from carecoord.settings import Settings, check_bootstrap, host_port

log = logging.getLogger(__name__)

PeriodicJob = tuple[float, Callable[[], None]]
"""(interval in seconds, job). Jobs run on one background thread; a failing run is logged and the
job runs again at its next interval."""


def build_auth(settings: Settings) -> httpx.Auth | None:
    """The httpx auth for `CARECOORD_FHIR_AUTH` (settings were checked: what it needs is there)."""
    s = settings
    if s.fhir_auth == "bearer":
        assert s.fhir_token is not None
        return BearerToken(s.fhir_token.get_secret_value())
    if s.fhir_auth == "client-credentials":
        assert s.fhir_token_url and s.fhir_client_id and s.fhir_client_secret
        return ClientCredentials(
            s.fhir_token_url,
            s.fhir_client_id,
            s.fhir_client_secret.get_secret_value(),
            s.fhir_scope,
        )
    if s.fhir_auth == "smart-backend":
        assert s.fhir_token_url and s.fhir_client_id and s.fhir_private_key_file and s.fhir_key_id
        try:
            key = Path(s.fhir_private_key_file).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"CARECOORD_FHIR_PRIVATE_KEY_FILE cannot be read ({exc.strerror})",
                path=str(s.fhir_private_key_file),
            ) from exc
        return SmartBackendServices(
            s.fhir_token_url,
            s.fhir_client_id,
            key,
            s.fhir_key_id,
            alg=s.fhir_jwt_algorithm,
            scope=s.fhir_scope or "system/*.rs",
        )
    return None


def handlers_from_settings(settings: Settings) -> HandlerTable:
    """The enabled handlers, their merged configuration validated (a bad value: ConfigError)."""
    return load_handlers(
        enabled=settings.handlers_enabled,
        disabled=settings.handlers_disabled,
        config=settings.handlers,
        extra_modules=settings.handler_modules,
    )


def startup_checks(settings: Settings, handlers: HandlerTable, *, real_broker: bool) -> None:
    """The configuration checks that need the loaded handlers or a real broker, run before
    anything connects: ONE ConfigError line naming the setting and the fix (docs/
    configuration-errors.md lists every check). Settings and handler values were checked when
    they loaded."""
    if real_broker:
        check_bootstrap(settings)
        check_kafka_options(settings)
    if "referrals" in handlers.names:
        problem = requester_problem(handlers.configs["referrals"])
        if problem is not None:
            raise ConfigError(problem)
    DischargeMapping.from_setting(settings.discharge_mapping)  # a bad one: ConfigError
    specs_from_settings(settings)  # an unknown Subscription kind: ConfigError, even unregistered


def build_fhir_client(settings: Settings, *, retry_budget: float | None = None) -> FhirClient:
    """The FHIR client of the settings; `retry_budget` caps CARECOORD_FHIR_RETRY_BUDGET (an
    interactive command gives up sooner than the service)."""
    if settings.fhir_base_url is None:
        raise ConfigError("CARECOORD_FHIR_BASE_URL is not set")
    budget = settings.fhir_retry_budget
    return FhirClient(
        settings.fhir_base_url,
        auth=build_auth(settings),
        timeout=settings.fhir_timeout,
        retry_budget=budget if retry_budget is None else min(budget, retry_budget),
        fhir_version=settings.fhir_version,
    )


# CARECOORD_KAFKA_OPTIONS keys that name one of these fields set it; the rest go to kafka-python.
_CONNECTION_FIELDS = {f.name for f in dataclasses.fields(KafkaConnection)} - {"extra"}
_RUNTIME_FIELDS = {f.name for f in dataclasses.fields(RuntimeOptions)} - {"kafka"}


def kafka_connection(settings: Settings) -> KafkaConnection:
    """The Kafka client settings: CARECOORD_KAFKA_* variables, then the `kafka_options` keys
    that name a KafkaConnection field (session_timeout_ms, request_timeout_ms, fetch_max_bytes,
    ...); keys that name neither it nor a RuntimeOptions field are passed to kafka-python as is."""
    s = settings
    options = s.kafka_options
    values: dict[str, Any] = {
        "bootstrap": s.kafka_bootstrap,
        "security_protocol": s.kafka_security_protocol,
        "sasl_mechanism": s.kafka_sasl_mechanism,
        "sasl_plain_username": s.kafka_sasl_username,
        "sasl_plain_password": s.kafka_sasl_password,
        "ssl_cafile": str(s.kafka_ssl_cafile) if s.kafka_ssl_cafile else None,
        "ssl_certfile": str(s.kafka_ssl_certfile) if s.kafka_ssl_certfile else None,
        "ssl_keyfile": str(s.kafka_ssl_keyfile) if s.kafka_ssl_keyfile else None,
        "ssl_password": s.kafka_ssl_password,
    }
    values.update({k: v for k, v in options.items() if k in _CONNECTION_FIELDS})
    _check_whole_numbers(values)
    values["extra"] = {
        k: v for k, v in options.items() if k not in _CONNECTION_FIELDS | _RUNTIME_FIELDS
    }
    return KafkaConnection(**values)


def _check_whole_numbers(values: dict[str, Any]) -> None:
    # The dataclass does not check types: a timeout of "6000" would only fail inside kafka-python.
    defaults = KafkaConnection()
    for name, value in values.items():
        wants_int = isinstance(getattr(defaults, name), int)
        if wants_int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(
                f"CARECOORD_KAFKA_OPTIONS has {name} of the wrong type: use a whole number"
            )


def _check_option_types(options: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Each option of the type of its default (bool, number or text; None and other defaults
    are not checked): a wrong one is a ConfigError naming it at start-up, never its value, not
    a failure of the first client that reads it."""
    for name, value in options.items():
        default = defaults.get(name)
        if isinstance(default, bool):
            ok, want = isinstance(value, bool), "true or false"
        elif isinstance(default, int | float):
            ok, want = isinstance(value, int | float) and not isinstance(value, bool), "a number"
        elif isinstance(default, str):
            ok, want = isinstance(value, str), "a string"
        else:
            continue
        if not ok:
            raise ConfigError(f"CARECOORD_KAFKA_OPTIONS has {name} of the wrong type: use {want}")


def _kafka_python_defaults() -> dict[str, Any]:
    """The defaults of every kafka-python client's options (imported only for a real broker)."""
    from kafka.admin.client import KafkaAdminClient
    from kafka.consumer.group import KafkaConsumer
    from kafka.producer.kafka import KafkaProducer

    merged: dict[str, Any] = {}
    for client in (KafkaAdminClient, KafkaProducer, KafkaConsumer):
        merged.update(client.DEFAULT_CONFIG)
    merged.pop("acks", None)  # a number or "all" (the adapter sets all and never yields it)
    return merged


def check_kafka_options(settings: Settings) -> None:
    """CARECOORD_KAFKA_OPTIONS as kafka-python will take them: every name one of its clients
    takes, every value of its default's type (checked before anything connects)."""
    connection = kafka_connection(settings)
    connection.common("consumer")  # a name no kafka-python client takes: ConfigError naming it
    _check_option_types(dict(connection.extra), _kafka_python_defaults())


def runtime_options(settings: Settings) -> RuntimeOptions:
    """RuntimeOptions from settings, with `kafka_connection(settings)` as its `kafka`. Keys of
    `kafka_options` that name a RuntimeOptions field (max_poll_records, create_topics_partitions,
    ...) set it."""
    s = settings
    values: dict[str, Any] = {
        "topic_in": s.topic_in,
        "topic_out": s.topic_out,
        "topic_dlq": s.topic_dlq,
        "group_id": s.group_id,
        "max_in_flight": s.concurrency,
        "retry_budget_seconds": s.retry_budget,
        "shutdown_drain_seconds": s.drain_timeout,
    }
    options = {k: v for k, v in s.kafka_options.items() if k in _RUNTIME_FIELDS}
    _check_option_types(options, {f.name: f.default for f in dataclasses.fields(RuntimeOptions)})
    values.update(options)
    try:
        return RuntimeOptions(**values, kafka=kafka_connection(s))
    except TypeError as exc:
        raise ConfigError(f"CARECOORD_KAFKA_OPTIONS has a value of the wrong type ({exc})") from exc


def _job_name(job: Callable[[], object]) -> str:
    """A job's name for the logs: its function's module and name, never `<locals>` noise."""
    name = getattr(job, "__name__", type(job).__name__)
    module = getattr(job, "__module__", "") or ""
    return f"{module.rsplit('.', 1)[-1]}.{name}" if module else name


class PeriodicRunner:
    """Runs (interval, job) pairs on one daemon thread until closed."""

    def __init__(self, jobs: Sequence[PeriodicJob] = ()) -> None:
        self._jobs: list[PeriodicJob] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="carecoord-periodic", daemon=True)
        self.add(jobs)

    def add(self, jobs: Sequence[PeriodicJob]) -> None:
        if self._thread.is_alive():
            raise RuntimeError("add periodic jobs before the service starts")
        self._jobs += [(float(interval), job) for interval, job in jobs if interval > 0]

    def start(self) -> PeriodicRunner:
        if self._jobs:
            names = [_job_name(job) for _, job in self._jobs]
            intervals = [interval for interval, _ in self._jobs]
            log.info("periodic jobs scheduled", extra={"jobs": names, "intervals": intervals})
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        due = [time.monotonic() + interval for interval, _ in self._jobs]
        while not self._stop.is_set():
            now = time.monotonic()
            for i, (interval, job) in enumerate(self._jobs):
                if now >= due[i]:
                    name = _job_name(job)
                    try:
                        job()
                    except Exception as exc:
                        log.warning(
                            "periodic job failed", extra={"job": name, "error": type(exc).__name__}
                        )
                    due[i] = time.monotonic() + interval
            self._stop.wait(max(0.05, min(due) - time.monotonic()))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Service:
    """The consumer service: one runtime, its metrics, health endpoints and periodic jobs."""

    def __init__(
        self,
        settings: Settings,
        *,
        handlers: HandlerTable | None = None,
        fhir: TransactionalFhir | None = None,
        broker: Broker | None = None,
        periodic_jobs: Sequence[PeriodicJob] = (),
        clock: Callable[[], datetime] = _utc_now,
        metrics: ServiceMetrics | None = None,
        reconcile: ReconcileTrigger | None = None,
    ) -> None:
        self.settings = settings
        self.subscription_watch: SubscriptionWatch | None = None
        self.handlers = handlers if handlers is not None else handlers_from_settings(settings)
        startup_checks(settings, self.handlers, real_broker=broker is None)
        self._owned_fhir = fhir is None
        self.fhir: TransactionalFhir = fhir if fhir is not None else build_fhir_client(settings)
        self.metrics = metrics or ServiceMetrics()
        interval = settings.health_check_interval
        self.fhir_availability = Availability(
            "fhir",
            self._probe_fhir,
            up=False,  # nothing is processed before the server has answered once
            check_interval=interval,
            on_change=self.metrics.on_dependency,
        )
        self.kafka_availability = Availability(
            "kafka",
            self._probe_kafka,
            check_interval=interval,
            on_change=self.metrics.on_dependency,
        )
        self.metrics.dependency_up.labels("fhir").set(0)
        self.metrics.dependency_up.labels("kafka").set(1)
        for availability in (self.fhir_availability, self.kafka_availability):
            self.metrics.watch_down_seconds(availability.name, availability.down_seconds)
        self.processor = HandlerProcessor(
            self.handlers.specs,
            self.fhir,
            config=self.handlers.configs,
            clock=clock,
            observe_handler=self.metrics.observe_handler,
        )
        self.runtime = EventRuntime(
            self.processor,
            runtime_options(settings),
            broker=broker,
            observer=self.metrics,
            dependencies=(self.fhir_availability, self.kafka_availability),
        )
        self._periodic = PeriodicRunner(periodic_jobs)
        # Notifications and the reconciling poller share the translators and what was published.
        self.translators = translators(DischargeMapping.from_setting(settings.discharge_mapping))
        self.seen_versions = SeenVersions()
        self.reconciler = self._reconciler() if settings.reconcile_enabled else None
        # Asked to run when the Subscription watch finds notifications lost: the poller, unless
        # it is off (then a WARNING says so) or the caller brings its own.
        self.reconcile: ReconcileTrigger = reconcile or self.reconciler or WarningReconcileTrigger()
        self._stop = threading.Event()
        self.health: HealthServer | None = None
        self.notifications: NotificationServer | None = None
        self._producer: Producer | None = None
        self._producer_lock = threading.Lock()

    def _reconciler(self) -> Reconciler:
        s = self.settings
        # One deployment (consumer group), one cursor topic: two must never share cursors.
        topic = s.reconcile_cursor_topic or f"{s.group_id}.reconcile.cursor"
        cursors = KafkaCursors(self.runtime.broker, topic, f"{s.group_id}.reconcile")
        return Reconciler(
            fhir_pages(self.fhir),
            self.publish_changes,
            cursors,
            leadership=cursors,
            seen=self.seen_versions,
            translators=self.translators,
            interval=s.reconcile_interval,
            overlap=s.reconcile_overlap,
            metrics=self.metrics.reconcile,
            ready=lambda: self.fhir_availability.up,
        )

    def add_periodic_jobs(self, jobs: Sequence[PeriodicJob]) -> None:
        self._periodic.add(jobs)

    def publish(self, events: Sequence[CloudEvent], topic: str | None = None) -> None:
        """Produce events (default: to the input topic, e.g. the sweeper's time-based triggers)
        and wait for the broker's acknowledgement."""
        if not events:
            return
        with self._producer_lock:
            if self._producer is None:
                self._producer = self.runtime.broker.producer()
            EventProducer(self._producer, topic or self.settings.topic_in).publish(events)

    def publish_changes(self, events: Sequence[CloudEvent]) -> None:
        """Publish the events translated from FHIR changes (notifications, the poller) that an
        enabled handler takes. With a handler switched off (say, assessments) its events are not
        produced at all: published, each would be a dead letter ("no enabled handler")."""
        handled = self.processor.event_types
        kept = [e for e in events if e.type in handled]
        if len(kept) < len(events):
            unhandled = sorted({e.type for e in events if e.type not in handled})
            log.info(
                "FHIR changes for no enabled handler not published",
                extra={"event_types": unhandled, "count": len(events) - len(kept)},
            )
        self.publish(kept)

    def ready(self) -> bool:
        """Joined the group and polling, and both the FHIR server and the broker answer now."""
        return self.fhir_availability.up and self.kafka_availability.up and self.runtime.ready

    def request_stop(self) -> None:
        self._stop.set()
        self.runtime.request_stop()

    def run(self, stop: threading.Event | None = None) -> None:
        s = self.settings
        log.info(
            "carecoord service starting",
            extra={"handlers": list(self.handlers.names), "settings": s.redacted()},
        )
        if not self.handlers.specs:
            log.warning("no handler is enabled: every event will be dead-lettered")
        self.health = HealthServer(
            ready=self.ready,
            metrics=self.metrics.exposition,
            host=s.health_host,
            port=s.health_port,
        ).start()
        log.info("health endpoints listening", extra={"port": self.health.port})
        try:
            self.notifications = self.notification_listener()
        except BaseException:
            self.health.close()
            raise
        self.fhir_availability.start()
        self.kafka_availability.start()
        self._periodic.start()
        if self.reconciler is not None:
            self.reconciler.start()
        try:
            self.runtime.run(stop)
        finally:
            self._stop.set()
            self._periodic.close()
            if self.reconciler is not None:
                self.reconciler.close()
            self.fhir_availability.close()
            self.kafka_availability.close()
            if self.notifications is not None:
                self.notifications.close()
            if self.subscription_watch is not None:
                self.subscription_watch.close()
            self.health.close()
            if self._producer is not None:
                self._producer.close()
            close = getattr(self.fhir, "close", None)
            if self._owned_fhir and callable(close):
                close()
            log.info("carecoord service stopped")

    def notification_listener(self) -> NotificationServer | None:
        """The FHIR notification rest-hook on its own listener, started, when enabled (settings
        guarantee a non-empty token: the endpoint is never open)."""
        s = self.settings
        if not s.notifications_enabled:
            return None
        token = s.notifications_token.get_secret_value() if s.notifications_token else ""
        subscriptions = _json_fhir(self.fhir)
        watch = SubscriptionWatch(
            trigger=self.reconcile,
            server=manager(subscriptions) if subscriptions is not None else None,
            metrics=self.metrics,
        )
        secret = s.notifications_hmac_secret
        endpoint = NotificationEndpoint(
            self.publish_changes,
            self.fhir,
            token=token,
            max_resources=s.notifications_max_resources,
            watch=watch,
            hmac_secret=secret.get_secret_value() if secret else None,
            translators=self.translators,
            seen=self.seen_versions,
        )  # "" -> ConfigError
        watch.replay = endpoint.replay
        self.subscription_watch = watch
        if subscriptions is not None:
            listed = manager(subscriptions)

            def subscription_statuses() -> None:
                watch.refresh(listed)

            self._periodic.add([
                (_watchdog_interval(s), watch.check),
                (STATUS_REFRESH_SECONDS, subscription_statuses),
            ])  # fmt: skip
            threading.Thread(
                target=self._start_subscriptions,
                args=(subscriptions, watch),
                name="carecoord-subscriptions",
                daemon=True,
            ).start()
        server = NotificationServer(
            endpoint,
            host=s.notifications_host,
            port=s.notifications_port,
            path=s.notifications_path,
            max_body_bytes=s.notifications_max_body_bytes,
        ).start()
        log.info(
            "FHIR notifications listening",
            extra={"host": s.notifications_host, "port": server.port, "path": s.notifications_path},
        )
        return server

    def _start_subscriptions(self, fhir: JsonFhir, watch: SubscriptionWatch) -> None:
        """At start: `subscriptions ensure` when asked (CARECOORD_SUBSCRIPTIONS_ENSURE_AT_START),
        then the event counts re-baselined from `$status` (a restart is no false gap). A failure
        is a WARNING: notifications still flow, and the first one baselines its subscription."""
        try:
            if self.settings.subscriptions_ensure_at_start:
                report = ensure_subscriptions(self.settings, fhir)
                log.info(
                    "FHIR Subscriptions ensured",
                    extra={
                        "created": report.created,
                        "updated": report.updated,
                        "removed": report.removed,
                    },
                )
            watch.baseline(manager(fhir))
        except (FhirError, ConfigError) as exc:
            log.warning(
                "FHIR Subscriptions not checked at start", extra={"error": type(exc).__name__}
            )

    def _probe_fhir(self) -> None:
        """The FHIR server answers: a cheap ping (any HTTP answer but 5xx/429 is "up"), then the
        CapabilityStatement the first time (the client keeps it, so the writes never fetch it
        again). A statement that is missing or not a CapabilityStatement does not make the
        server down: its capabilities are unknown (one warning, carecoord.fhir.capabilities) and
        requests take the conservative plan; only an unavailable server fails the probe."""
        ping = getattr(self.fhir, "ping", None)
        if callable(ping):
            ping()
        statement_of(self.fhir)

    def _probe_kafka(self) -> None:
        """A bootstrap server accepts a TCP connection (cheap, and safe from any thread; the
        consumer itself is not)."""
        failure: OSError | None = None
        for server in self.settings.bootstrap_servers():
            host, _, port = host_port(server)
            try:
                with socket.create_connection((host.strip("[]") or server, int(port)), 3.0):
                    return
            except (OSError, ValueError) as exc:
                failure = exc if isinstance(exc, OSError) else OSError(str(exc))
        raise failure or OSError("no bootstrap server configured")


# How often carecoord's Subscriptions are listed again (status `error`, new ones' heartbeats).
STATUS_REFRESH_SECONDS = 300.0


def _json_fhir(fhir: object) -> JsonFhir | None:
    """The client as raw JSON REST (Subscriptions, $status), when it offers that."""
    return cast(JsonFhir, fhir) if callable(getattr(fhir, "request_json", None)) else None


def _watchdog_interval(settings: Settings) -> float:
    """How often silent subscriptions are looked for: a quarter of the heartbeat period, within
    5 s .. 60 s (a miss is 2x the period, so it is noticed well within 2.25x)."""
    period = settings.subscriptions_heartbeat_period or 240
    return min(60.0, max(5.0, period / 4))


def plugin_periodic_jobs(service: Service, module: str | ModuleType = sweeper) -> list[PeriodicJob]:
    """Periodic jobs offered by `module` through `periodic_jobs(service) -> [(interval, job)]`,
    at `CARECOORD_SWEEPER_INTERVAL` seconds (default 300; 0 turns them off).

    The hook is generic: a job gets the whole service (settings, fhir, handlers' configs,
    `publish()` for the events it wants processed). A module that is not there offers none.
    """
    if isinstance(module, ModuleType):
        mod = module
    else:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                return []
            raise
    factory = getattr(mod, "periodic_jobs", None)
    if factory is None:
        log.warning("module has no periodic_jobs(service)", extra={"module": mod.__name__})
        return []
    jobs = list(factory(service))
    interval = service.settings.sweeper_interval  # CARECOORD_SWEEPER_INTERVAL wins; 0 = off
    return [(interval, job) for _, job in jobs] if interval > 0 else []
