"""What the runtime does with each kind of failure (`classify`): dead-letter at once, retry within
the budget, or wait out an outage of the dependency, honouring the server's Retry-After."""

from __future__ import annotations

import pytest

from carecoord.errors import CarecoordError, ConfigError, EventError, HandlerError, MalformedEvent
from carecoord.events.broker import BrokerError, MessageTooLarge
from carecoord.events.ordering import Failure
from carecoord.events.runtime import TransientError, classify
from carecoord.fhir.errors import (
    FhirConflict,
    FhirInvalid,
    FhirNotFound,
    FhirRateLimited,
    FhirServerError,
    FhirTransportError,
)


class Throttled(TransientError):
    def __init__(self, retry_after: object) -> None:
        super().__init__("throttled", task="Task/t1")
        self.retry_after = retry_after


class Skippable(EventError):
    """An event error its handler marks as not permanent."""

    permanent = False


class LibraryTimeout(Exception):
    """A third-party exception that happens to carry a retry hint."""

    def __init__(self, text: str, retry_after: object) -> None:
        super().__init__(text)
        self.retry_after = retry_after


def test_an_unexpected_exception_is_retried_under_its_type_name_without_its_text() -> None:
    assert classify(ZeroDivisionError("patient Jane Doe")) == Failure(
        "ZeroDivisionError", "unexpected ZeroDivisionError", permanent=False
    )
    assert classify(LibraryTimeout("for Jane", retry_after=3)) == Failure(
        "LibraryTimeout", "unexpected LibraryTimeout", permanent=False, retry_after=3.0
    )


def test_a_transient_error_is_retried_with_the_hint_it_carries() -> None:
    assert classify(Throttled(0.5)) == Failure(
        "Throttled", "throttled (task=Task/t1)", permanent=False, retry_after=0.5
    )
    assert classify(Throttled(2)).retry_after == 2.0
    assert classify(Throttled("soon")).retry_after is None  # not a number of seconds
    assert classify(Throttled(None)).retry_after is None
    assert classify(TransientError("flaky")) == Failure("TransientError", "flaky", permanent=False)


def test_a_conflict_is_rerun_not_dead_lettered() -> None:
    assert classify(FhirConflict("409", status=409)) == Failure(
        "FhirConflict", "409 (status=409)", permanent=False
    )


def test_a_server_that_is_down_or_rate_limiting_is_an_outage_of_fhir() -> None:
    assert classify(FhirRateLimited("429", status=429, retry_after=2)) == Failure(
        "FhirRateLimited",
        "429 (status=429)",
        permanent=False,
        retry_after=2.0,
        outage="fhir",
        declared=True,
    )
    assert classify(FhirServerError("503", status=503)) == Failure(
        "FhirServerError", "503 (status=503)", permanent=False, outage="fhir", declared=True
    )
    # A 500 or an unreachable server is an outage only a probe can confirm.
    assert classify(FhirServerError("500", status=500)) == Failure(
        "FhirServerError", "500 (status=500)", permanent=False, outage="fhir"
    )
    assert classify(FhirTransportError("connect")) == Failure(
        "FhirTransportError", "connect", permanent=False, outage="fhir"
    )
    assert classify(BrokerError("produce timed out")) == Failure(
        "BrokerError", "produce timed out", permanent=False, outage="kafka"
    )


@pytest.mark.parametrize(
    "exc",
    [
        FhirInvalid("422", status=422, retry_after=5.0),
        FhirNotFound("404", status=404),
        FhirTransportError("unsupported protocol", transient=False),
        MessageTooLarge("record too large"),
        ConfigError("no requester configured"),
        MalformedEvent("not JSON", event_id="e1"),
        HandlerError("no referral task", event_id="e1"),
        CarecoordError("a bug we raise on purpose"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_everything_else_carecoord_raises_is_dead_lettered_at_once(exc: CarecoordError) -> None:
    # permanent: no retry, so no retry hint and no outage either
    assert classify(exc) == Failure(type(exc).__name__, str(exc), permanent=True)


def test_an_event_error_may_say_it_is_not_permanent() -> None:
    assert classify(Skippable("later", event_id="e1")) == Failure(
        "Skippable", "later (event_id=e1)", permanent=False
    )
