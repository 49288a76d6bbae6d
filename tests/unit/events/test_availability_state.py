"""An Availability's state without its probe thread: reports, confirmation, recovery, the
confirmed outage seconds (its module's clock replaced) and the observer."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from carecoord.events import availability as availability_module
from carecoord.events.availability import Availability


@dataclass
class Clock:
    now: float = 500.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(availability_module, "time", fake)
    return fake


def watched(**kw: object) -> tuple[Availability, list[tuple[str, bool]]]:
    changes: list[tuple[str, bool]] = []
    dep = Availability("fhir", lambda: None, on_change=lambda n, up: changes.append((n, up)), **kw)  # type: ignore[arg-type]
    return dep, changes


def test_a_report_pauses_once_and_tells_the_observer(clock: Clock) -> None:
    dep, changes = watched()
    assert dep.up and not dep.confirmed_down and dep.outages == 0
    dep.report_down("ConnectError")
    dep.report_down("ConnectError")  # the same outage
    assert not dep.up and not dep.confirmed_down
    assert dep.outages == 1 and changes == [("fhir", False)]


def test_a_declared_outage_is_confirmed_at_once_and_counts_its_seconds(clock: Clock) -> None:
    dep, _ = watched()
    dep.report_down("FhirRateLimited", 2.0, confirmed=True)
    assert dep.confirmed_down
    clock.now += 7.0
    assert dep.confirmed_down_seconds() == 7.0


def test_a_later_declared_report_confirms_an_outage_in_progress(clock: Clock) -> None:
    dep, _ = watched()
    dep.report_down("ConnectError")
    clock.now += 3.0
    assert dep.confirmed_down_seconds() == 0.0
    dep.report_down("FhirServerError", confirmed=True)
    assert dep.confirmed_down
    dep.report_down("ConnectError")  # an unconfirmed report does not take it back
    assert dep.confirmed_down
    assert dep.confirmed_down_seconds() == 3.0  # since the outage began


def test_recovery_keeps_the_confirmed_seconds_and_resets(clock: Clock) -> None:
    dep, changes = watched()
    dep.report_down("ConnectError")
    dep._confirm()
    clock.now += 4.0
    dep._recover()
    assert dep.up and not dep.confirmed_down
    assert changes == [("fhir", False), ("fhir", True)]
    clock.now += 100.0
    assert dep.confirmed_down_seconds() == 4.0  # up since: no more seconds
    dep.report_down("ConnectError")  # a second outage, unconfirmed: it adds nothing
    clock.now += 5.0
    dep._recover()
    assert dep.confirmed_down_seconds() == 4.0 and dep.outages == 2
    dep.report_down("ConnectError", confirmed=True)
    clock.now += 1.5
    assert dep.confirmed_down_seconds() == 5.5
    dep._recover()  # both confirmed outages are kept
    clock.now += 10.0
    assert dep.confirmed_down_seconds() == 5.5


def test_starting_down_is_a_confirmed_outage_from_the_start(clock: Clock) -> None:
    dep, _ = watched(up=False)
    assert not dep.up and dep.confirmed_down and dep.outages == 1
    clock.now += 2.0
    assert dep.confirmed_down_seconds() == 2.0
    dep._recover()
    assert dep.up and dep.confirmed_down_seconds() == 2.0


def test_the_retry_hint_keeps_the_longest(clock: Clock) -> None:
    dep, _ = watched()
    dep.report_down("FhirRateLimited", 0.5, confirmed=True)
    assert dep._retry_after == 0.5
    dep.report_down("FhirRateLimited", 2.0, confirmed=True)
    dep.report_down("FhirRateLimited", 1.0, confirmed=True)
    assert dep._retry_after == 2.0
    dep.report_down("FhirRateLimited", 3.0)
    assert dep._retry_after == 3.0


def test_a_probe_failure_is_false_and_a_failing_observer_breaks_nothing(clock: Clock) -> None:
    def down() -> None:
        raise ConnectionError("refused")

    assert Availability("fhir", down)._probe_ok() is False
    assert Availability("fhir", lambda: None)._probe_ok() is True

    def broken(name: str, up: bool) -> None:
        raise RuntimeError("observer bug")

    dep = Availability("fhir", lambda: None, on_change=broken)
    dep.report_down("ConnectError")
    dep._recover()
    assert dep.up


def test_down_seconds_is_the_current_outage_confirmed_or_not_and_zero_once_up(
    clock: Clock,
) -> None:
    dep, _ = watched()
    assert dep.down_seconds() == 0.0
    dep.report_down("ConnectError")  # not confirmed: an operator still sees how long it lasts
    clock.now += 4.0
    assert dep.down_seconds() == 4.0
    dep._recover()
    assert dep.down_seconds() == 0.0
    never_up, _ = watched(up=False)  # a server that never answered is down from the start
    clock.now += 2.5
    assert never_up.down_seconds() == 2.5


def test_the_down_seconds_gauge_reads_the_outage_at_scrape_time(clock: Clock) -> None:
    from carecoord.service.metrics import ServiceMetrics

    dep, _ = watched()
    metrics = ServiceMetrics()
    metrics.watch_down_seconds("fhir", dep.down_seconds)
    gauge = 'carecoord_dependency_down_seconds{dependency="fhir"}'
    assert f"{gauge} 0.0" in metrics.exposition().decode()
    dep.report_down("ConnectError")
    clock.now += 9.0
    assert f"{gauge} 9.0" in metrics.exposition().decode()
