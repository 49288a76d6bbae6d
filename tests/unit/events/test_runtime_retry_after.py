"""A server's Retry-After is honoured (in-memory broker): a rate-limited FHIR server is neither
retried nor probed sooner than it asked, however small the configured backoff."""

from __future__ import annotations

import time

from carecoord.core.envelope import CloudEvent
from carecoord.errors import CarecoordError
from carecoord.events.availability import Availability
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import EventRuntime
from carecoord.fhir.errors import FhirRateLimited
from support.runtime import Recorder, event_bytes, options, produce

HINT = 0.5  # seconds the server asks for, 50 to 500 times the configured backoff below


class Throttled(CarecoordError):
    """A transient failure that is not an outage, carrying the other side's Retry-After."""

    transient = True

    def __init__(self, retry_after: float) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


def test_a_transient_failure_is_not_retried_sooner_than_its_retry_after() -> None:
    broker = InMemoryBroker(default_partitions=1)
    attempts: list[float] = []

    def throttled_once(event: CloudEvent, attempt: int) -> None:
        attempts.append(time.monotonic())
        if attempt == 1:
            raise Throttled(retry_after=HINT)

    rec = Recorder(behaviour=throttled_once)
    # The backoff alone would retry after 1-2 ms; backoff_max only bounds how long a hint may
    # hold an event back, so it is set above the hint.
    opts = options(backoff_base_seconds=0.002, backoff_max_seconds=5.0, retry_budget_seconds=3.0)
    runtime = EventRuntime(rec, opts, broker=broker)
    produce(broker, "in", "p1", event_bytes("p1", 0))
    assert runtime.run_until_idle(timeout=10)
    assert rec.per_patient() == {"p1": [0]}
    assert broker.records("dlq") == []
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= HINT


def test_a_rate_limited_server_is_neither_probed_nor_retried_sooner_than_its_retry_after() -> None:
    broker = InMemoryBroker(default_partitions=1)
    calls: list[tuple[str, float]] = []  # every request that reaches the server: probe or write

    def probe() -> None:
        calls.append(("probe", time.monotonic()))

    def rate_limited_once(event: CloudEvent, attempt: int) -> None:
        calls.append(("write", time.monotonic()))
        if attempt == 1:
            raise FhirRateLimited("FHIR server answered 429", status=429, retry_after=HINT)

    # No periodic health probe during the test; probe backoff and event backoff of milliseconds.
    fhir = Availability("fhir", probe, check_interval=60.0, backoff_base=0.002,
                        backoff_max=0.01).start()  # fmt: skip
    rec = Recorder(behaviour=rate_limited_once)
    opts = options(backoff_base_seconds=0.002, backoff_max_seconds=0.01, retry_budget_seconds=0.1)
    runtime = EventRuntime(rec, opts, broker=broker, dependencies=[fhir])
    produce(broker, "in", "p1", event_bytes("p1", 0))
    try:
        assert runtime.run_until_idle(timeout=10)
    finally:
        fhir.close()
    assert rec.per_patient() == {"p1": [0]}
    assert broker.records("dlq") == []
    assert fhir.outages == 1
    (first, refused), *after = calls
    assert first == "write"
    assert [kind for kind, _ in after] == ["probe", "write"]
    assert all(at - refused >= HINT for _, at in after), [at - refused for _, at in after]
