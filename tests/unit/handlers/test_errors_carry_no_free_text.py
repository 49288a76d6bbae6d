"""Error messages (and so dead-letter headers) carry ids and fixed words, never input text."""

from __future__ import annotations

from typing import Any

import pytest

from carecoord.core.effects import Effects
from carecoord.core.envelope import new_event
from carecoord.core.handler import HandlerSpec
from carecoord.errors import MalformedEvent
from carecoord.events import dlq
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import EventRuntime
from carecoord.handlers.processing import HandlerProcessor
from carecoord.handlers.referrals.handler import HANDLERS as REFERRALS
from support.handler_context import FakeFhir, care_team, ctx, event
from support.runtime import headers_of, options, produce

FREE_TEXT = "Jane Doe 555-1234"


def test_unknown_type_with_free_text_dead_letters_without_the_text() -> None:
    broker = InMemoryBroker(default_partitions=1)
    raw = new_event(f"carecoord.{FREE_TEXT}", "p1", {}, id="ev-7").to_json_bytes()
    produce(broker, "in", "p1", raw)
    spec = HandlerSpec("noop", ("carecoord.time.logged",), lambda e, c: Effects())
    processor = HandlerProcessor([spec], FakeFhir())  # type: ignore[arg-type]
    assert EventRuntime(processor, options(), broker=broker).run_until_idle(timeout=10.0)

    [letter] = broker.records("dlq")
    h = headers_of(letter)
    assert h[dlq.H_ERROR_TYPE] == "MalformedEvent"
    message = h[dlq.H_ERROR_MESSAGE]
    assert "no enabled handler" in message and "ev-7" in message
    for word in ("Jane", "555-1234"):
        assert word not in message
    [listed] = dlq.list_dead_letters(broker, "dlq")
    assert (listed.event_id, listed.event_type) == ("ev-7", None)  # the type is not echoed


def test_a_catalog_type_is_still_named() -> None:
    spec = HandlerSpec("noop", ("carecoord.time.logged",), lambda e, c: Effects())
    processor = HandlerProcessor([spec], FakeFhir())  # type: ignore[arg-type]
    with pytest.raises(MalformedEvent) as err:
        processor.process(new_event("carecoord.clinical.question", "p1", {}, id="ev-8"))
    assert "event_type=carecoord.clinical.question" in str(err.value)


@pytest.fixture
def fhir() -> FakeFhir:
    fake = FakeFhir()
    care_team(fake, "p1", "Practitioner/cm-1", "Practitioner/dr-1")
    return fake


@pytest.mark.parametrize(
    "data",
    [{"domain": FREE_TEXT}, {"evidence": FREE_TEXT}],
    ids=["unknown-domain", "evidence-not-a-reference"],
)
def test_sdoh_need_errors_do_not_echo_the_data(fhir: FakeFhir, data: dict[str, Any]) -> None:
    body = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
    need = event("carecoord.sdoh.need-identified", "p1", {**body, **data}, "ev-9")
    with pytest.raises(MalformedEvent) as err:
        REFERRALS[0].handle(need, ctx(fhir, {"organization": "Organization/practice"}))
    assert "ev-9" in str(err.value)
    assert "Jane" not in str(err.value) and "555" not in str(err.value)
