"""What the processor reports: the configuration each handler gets, how long it took, and what a
dead letter says when a handler crashes or its writes keep conflicting."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from test_processing import NOW, SPECS, FakeFhir, event, fhir, processor

from carecoord.core.effects import Effects, FhirWrite
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.errors import HandlerError, MalformedEvent
from carecoord.fhir.errors import FhirPreconditionFailed
from carecoord.handlers.processing import ConflictRetriesExhausted, HandlerProcessor

__all__ = ["fhir"]  # the fixture: task t1, ready, version 1


def test_a_handler_without_configuration_gets_its_defaults(fhir: FakeFhir) -> None:
    (noted,) = HandlerProcessor(SPECS, fhir, clock=lambda: NOW).process(event("other"))
    assert noted.data["limit"] == 1
    other = HandlerProcessor(SPECS, fhir, config={"starter": {}}, clock=lambda: NOW)
    assert other.process(event("other"))[0].data["limit"] == 1


def test_each_handler_run_is_observed_with_its_duration(fhir: FakeFhir) -> None:
    def slow(event: CloudEvent, ctx: HandlerContext) -> Effects:
        time.sleep(0.05)
        return Effects()

    seen: list[tuple[str, float]] = []
    proc = HandlerProcessor([HandlerSpec("slow", ("x",), slow)], fhir,
                            observe_handler=lambda name, s: seen.append((name, s)))  # fmt: skip
    proc.process(event("x"))
    ((name, seconds),) = seen
    assert name == "slow" and 0.05 <= seconds < 5


def test_a_crashing_handler_is_named_with_the_event_in_the_dead_letter(fhir: FakeFhir) -> None:
    def crash(event: CloudEvent, ctx: HandlerContext) -> Effects:
        raise KeyError("Jane Doe")

    seen: list[str] = []
    proc = HandlerProcessor([HandlerSpec("crashy", ("x",), crash)], fhir,
                            observe_handler=lambda name, s: seen.append(name))  # fmt: skip
    with pytest.raises(HandlerError) as err:
        proc.process(event("x"))
    assert err.value.message == "handler 'crashy' crashed with KeyError"
    # A type some handler is registered for is named; only unknown types may be free text.
    assert err.value.context == {"event_id": "evt-1", "event_type": "x", "handler": "crashy"}
    assert seen == ["crashy"]  # observed even when it crashed


def test_an_unknown_type_is_reported_as_such(fhir: FakeFhir) -> None:
    with pytest.raises(MalformedEvent) as err:
        processor(fhir).process(event("carecoord.nobody.listens"))
    assert err.value.message == "no enabled handler for this event type"
    assert err.value.context == {"event_id": "evt-1"}


def test_conflicts_are_re_run_three_times_by_default_then_reported(fhir: FakeFhir) -> None:
    tries: list[int] = []

    def always_stale(writes: Sequence[FhirWrite]) -> object:
        tries.append(len(writes))
        raise FhirPreconditionFailed("version mismatch", status=412, request="POST [base]")

    fhir.apply = always_stale  # type: ignore[method-assign]
    with pytest.raises(ConflictRetriesExhausted) as err:
        processor(fhir).process(event())
    assert len(tries) == 4  # the first try and three re-runs
    assert err.value.message == "event evt-1 (task.start) still conflicts after 3 re-runs"
    assert err.value.context == {"status": 412, "request": "POST [base]"}
    assert isinstance(err.value.__cause__, FhirPreconditionFailed)
