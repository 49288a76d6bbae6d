"""Run the real EventRuntime (or a plain kafka-python loop) over a topic until N events are done.

Rates are measured from the first record handed over by a poll to the N-th event processed, so
the consumer-group join (seconds on tansu) is excluded from both the runtime and the baseline.
The process's CPU time over the same span (all its threads: time.process_time) is recorded too:
on a shared machine it varies less than the wall-clock rate.
"""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from carecoord.core.effects import Emit
from carecoord.core.envelope import CloudEvent
from carecoord.events.broker import TP, KafkaConnection
from carecoord.events.runtime import EventProcessor, EventRuntime, NoopObserver, RuntimeOptions

SESSION_TIMEOUT_MS = 4000  # tansu joins take about session_timeout/2
HEARTBEAT_MS = 1000


class BenchError(RuntimeError):
    pass


@dataclass
class Run:
    events: int
    seconds: float  # first record polled -> N-th event done
    startup_seconds: float  # runtime start -> first record polled (mostly the group join)
    failures: int = 0
    cpu_seconds: float = 0.0  # this process's CPU time over `seconds`

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds / self.events * 1e6 if self.events else 0.0


class _Counter(NoopObserver):
    """Stamps the first consumed record and the N-th processed event, then asks for a stop."""

    def __init__(self, target: int, stop: threading.Event) -> None:
        self.target = target
        self.stop = stop
        self.first_consumed: float | None = None
        self.done_at: float | None = None
        self.cpu_first = self.cpu_done = 0.0
        self.failures = 0
        self.processed = 0
        self._processed = itertools.count(1)  # next() on it is atomic under the GIL

    def on_consumed(self, tp: TP) -> None:
        if self.first_consumed is None:
            self.first_consumed = time.perf_counter()
            self.cpu_first = time.process_time()

    def on_processed(self, tp: TP, event_type: str, seconds: float) -> None:
        n = self.processed = next(self._processed)
        if n == self.target:
            self.done_at = time.perf_counter()
            self.cpu_done = time.process_time()
            self.stop.set()

    def on_failed(self, tp: TP, error_type: str) -> None:
        self.failures += 1


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def runtime_options(
    bootstrap: str, topic: str, max_in_flight: int, poll_timeout: float | None = None
) -> RuntimeOptions:
    options = RuntimeOptions(
        topic_in=topic,
        topic_out=f"{topic}.out",
        topic_dlq=f"{topic}.dlq",
        group_id=unique("bench"),
        max_in_flight=max_in_flight,
        kafka=KafkaConnection(
            bootstrap=bootstrap,
            client_id="carecoord-bench",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
        ),
    )
    if poll_timeout is not None:
        options.poll_timeout_seconds = poll_timeout
    return options


class RuntimeRun:
    """The runtime on a background thread; `wait()` returns once `target` events are done."""

    def __init__(self, processor: EventProcessor, options: RuntimeOptions, target: int) -> None:
        self.stop = threading.Event()
        self.counter = _Counter(target, self.stop)
        self.runtime = EventRuntime(processor, options, observer=self.counter)
        self._thread = threading.Thread(target=self._run, name="bench-runtime", daemon=True)
        self._error: BaseException | None = None
        self.started = 0.0

    def _run(self) -> None:
        try:
            self.runtime.run(self.stop)
        except BaseException as exc:
            self._error = exc
            self.stop.set()

    def start(self) -> RuntimeRun:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.runtime.ready:
            if self._error is not None or time.monotonic() > deadline:
                self.stop.set()
                raise BenchError(f"runtime did not join the group within {timeout}s") from (
                    self._error
                )
            time.sleep(0.05)

    def wait(self, timeout: float, stall_seconds: float = 30.0) -> Run:
        """Wait for the target; give up after `timeout`, or once nothing was processed for
        `stall_seconds` after the first record arrived."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        finished = False
        while time.monotonic() < deadline:
            if self.stop.wait(1.0):
                finished = True
                break
            now = time.monotonic()
            if self.counter.processed != last:
                last, last_change = self.counter.processed, now
            elif self.counter.first_consumed is not None and now - last_change > stall_seconds:
                break
        self.stop.set()
        self._thread.join(60)
        c = self.counter
        if self._error is not None:
            raise BenchError("runtime failed") from self._error
        if not finished or c.done_at is None or c.first_consumed is None:
            raise BenchError(
                f"runtime stalled or timed out: {c.processed} of {c.target} events processed"
            )
        return Run(
            events=c.target,
            seconds=c.done_at - c.first_consumed,
            startup_seconds=c.first_consumed - self.started,
            failures=c.failures,
            cpu_seconds=c.cpu_done - c.cpu_first,
        )


def run_runtime(
    processor: EventProcessor,
    bootstrap: str,
    topic: str,
    target: int,
    *,
    max_in_flight: int = 16,
    poll_timeout: float | None = None,
    timeout: float = 300.0,
) -> Run:
    options = runtime_options(bootstrap, topic, max_in_flight, poll_timeout)
    return RuntimeRun(processor, options, target).start().wait(timeout)


def run_baseline(bootstrap: str, topic: str, target: int, timeout: float = 300.0) -> Run:
    """The yardstick: a plain kafka-python group consumer, poll + json.loads, nothing else."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[bootstrap],
        client_id="carecoord-bench-baseline",
        group_id=unique("bench-baseline"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
    )
    started = time.perf_counter()
    first: float | None = None
    cpu_first = 0.0
    n = 0
    deadline = time.monotonic() + timeout
    try:
        while n < target:
            if time.monotonic() > deadline:
                raise BenchError(f"baseline read only {n} of {target} events in {timeout}s")
            batches = consumer.poll(timeout_ms=200, max_records=500)
            for records in batches.values():
                if first is None:
                    first = time.perf_counter()
                    cpu_first = time.process_time()
                for r in records:
                    json.loads(r.value)
                    n += 1
        done = time.perf_counter()
        cpu = time.process_time() - cpu_first
    finally:
        consumer.close(autocommit=False)
    assert first is not None
    return Run(events=n, seconds=done - first, startup_seconds=first - started, cpu_seconds=cpu)


def baseline_latencies(
    bootstrap: str, topic: str, n: int, start_feed: Callable[[], subprocess.Popen[bytes]]
) -> list[float]:
    """Produce -> polled latency (ms) of a plain kafka-python loop: what the broker and client
    cost before the runtime adds anything. Joins first, then starts the feeder."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[bootstrap],
        client_id="carecoord-bench-baseline",
        group_id=unique("bench-baseline"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
    )
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise BenchError("baseline consumer did not join the group")
            consumer.poll(timeout_ms=100)
        feeder = start_feed()
        try:
            last_progress = time.monotonic()
            while len(latencies) < n:
                if time.monotonic() - last_progress > 30:
                    raise BenchError(f"baseline consumer got {len(latencies)} of {n} events")
                for records in consumer.poll(timeout_ms=200, max_records=500).values():
                    now = time.time_ns()
                    for r in records:
                        sent = json.loads(r.value)["data"]["sent_ns"]
                        latencies.append((now - sent) / 1e6)
                    last_progress = time.monotonic()
        finally:
            feeder.wait(60)
    finally:
        consumer.close(autocommit=False)
    return latencies


# ---------------------------------------------------------------------------------------------
# Processors


class NoopProcessor:
    def process(self, event: CloudEvent) -> Sequence[Emit]:
        return ()


class SlowWriteProcessor:
    """Simulates a FHIR transaction taking `seconds`; records (key, seq) for the order check."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds = seconds
        self.seen: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def process(self, event: CloudEvent) -> Sequence[Emit]:
        with self._lock:
            self.seen.append((event.patient_id or "", int(event.data["seq"])))
        time.sleep(self.seconds)
        return ()

    def order_violations(self) -> int:
        """Keys whose sequence numbers were not seen as 0, 1, 2, ... in that order."""
        per_key: dict[str, list[int]] = {}
        with self._lock:
            for key, seq in self.seen:
                per_key.setdefault(key, []).append(seq)
        return sum(1 for seqs in per_key.values() if seqs != list(range(len(seqs))))

    def keys(self) -> int:
        with self._lock:
            return len({k for k, _ in self.seen})


class LatencyProcessor:
    """Records produce -> processed latency from the `sent_ns` stamp the feeder put in the data."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self._lock = threading.Lock()

    def process(self, event: CloudEvent) -> Sequence[Emit]:
        latency = (time.time_ns() - int(event.data["sent_ns"])) / 1e6
        with self._lock:
            self.latencies_ms.append(latency)
        return ()


def quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
