"""The retry budget and a confirmed outage, observed without threads or sleeps.

The runtime's decision (EventRuntime._failed) is driven directly with one failed item whose first
failure lies far in the past, so "however long the outage" needs no waiting; the Availability's
clock is replaced (its module's `time`) so outage seconds are exact. The slow end-to-end check is
test_runtime_outage.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from carecoord.events import availability as availability_module
from carecoord.events.availability import Availability
from carecoord.events.broker import Record
from carecoord.events.memory import InMemoryBroker
from carecoord.events.ordering import Failure, WorkItem
from carecoord.events.runtime import EventRuntime
from support.runtime import Recorder, event_bytes, options

BUDGET = 2.0


@dataclass
class Clock:
    now: float = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(availability_module, "time", fake)
    return fake


@dataclass
class Decisions:
    retried: list[float] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)


def runtime_with(dependency: Availability) -> tuple[EventRuntime, Decisions]:
    runtime = EventRuntime(
        Recorder(),
        options(retry_budget_seconds=BUDGET),
        broker=InMemoryBroker(),
        dependencies=[dependency],
    )
    seen = Decisions()
    runtime._schedule_retry = lambda item, delay: seen.retried.append(delay)  # type: ignore[method-assign]
    runtime._dead_letter = lambda item, failure: seen.dead_lettered.append(failure.error_type)  # type: ignore[method-assign]
    return runtime, seen


def failed_long_ago(seconds: float) -> WorkItem:
    record = Record("in", 0, 7, b"p1", event_bytes("p1", 1))
    item = WorkItem(record, incarnation=0, attempts=3)
    # Failing (on a healthy server) for `seconds` before this failure: the budget alone is spent.
    item.first_failure = 1.0
    item.first_failure_mono = time.monotonic() - seconds  # the runtime's own clock
    return item


def outage(declared: bool = False) -> Failure:
    return Failure("FhirTransportError", "down", permanent=False, outage="fhir", declared=declared)


@pytest.mark.parametrize("failing_for", [BUDGET * 5, 3600.0, 30 * 86400.0])
def test_an_event_is_not_dead_lettered_while_its_dependency_is_confirmed_down(
    clock: Clock, failing_for: float
) -> None:
    fhir = Availability("fhir", lambda: None)
    fhir.report_down("ConnectError", confirmed=True)  # a 503: the server said so itself
    runtime, seen = runtime_with(fhir)
    runtime._failed(failed_long_ago(failing_for), outage(declared=True))
    assert seen.dead_lettered == [] and len(seen.retried) == 1


def test_a_probe_confirmed_outage_holds_the_event_too(clock: Clock) -> None:
    fhir = Availability("fhir", lambda: None)
    fhir.report_down("ConnectError")
    fhir._confirm()  # what the probe thread does when its probe fails as well
    runtime, seen = runtime_with(fhir)
    runtime._failed(failed_long_ago(BUDGET * 50), outage())
    assert seen.dead_lettered == [] and len(seen.retried) == 1


def test_the_same_event_is_dead_lettered_once_the_outage_is_over(clock: Clock) -> None:
    """The control: without a confirmed outage the spent budget does dead-letter."""
    fhir = Availability("fhir", lambda: None)
    runtime, seen = runtime_with(fhir)
    runtime._failed(failed_long_ago(BUDGET * 5), outage())  # unconfirmed
    assert seen.dead_lettered == ["FhirTransportError"] and seen.retried == []


def test_a_report_the_probe_has_not_confirmed_spends_the_budget(clock: Clock) -> None:
    fhir = Availability("fhir", lambda: None)
    fhir.report_down("ConnectError")
    clock.now += 100.0
    assert not fhir.confirmed_down
    assert fhir.confirmed_down_seconds() == 0.0
