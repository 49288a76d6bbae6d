"""Clinical questions go to the provider as a Task; carecoord never answers and never logs them."""

from __future__ import annotations

import logging

import pytest

from carecoord.caremodel import terminology as t
from carecoord.errors import HandlerError
from carecoord.handlers.clinical.routing import HANDLERS
from support.handler_context import FakeFhir, care_team, ctx, event

handle = HANDLERS[0].handle
QUESTION = "Should she double her metoprolol since her BP is 170/100?"


def ask(urgency: str = "routine", id_: str | None = None) -> object:
    data = {"question": QUESTION, "urgency": urgency, "raised_by": "Practitioner/cm-1"}
    return event("carecoord.clinical.question", "p1", data, id_)


def test_urgent_question_becomes_a_stat_task_for_the_provider(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fhir = FakeFhir()
    care_team(fhir, "p1", "Practitioner/cm-1", "Practitioner/dr-1")
    caplog.set_level(logging.DEBUG)
    fx = handle(ask("urgent"), ctx(fhir))  # type: ignore[arg-type]
    fhir.apply(fx)
    (task,) = fhir.all("Task")
    assert task.owner.reference == "Practitioner/dr-1"
    assert task.priority == "stat"
    assert task.status == "requested"
    assert t.concept_has(task.code, t.TASK_CLINICAL_REVIEW)
    assert task.input[0].valueString == QUESTION
    assert QUESTION not in (task.description or "")
    (emit,) = fx.emits
    assert emit.type == "carecoord.clinical.routed"
    assert emit.data["priority"] == "stat"
    assert QUESTION not in str(emit.data)
    assert "metoprolol" not in caplog.text


def test_routine_question_and_replay() -> None:
    fhir = FakeFhir()
    ev = ask("routine", "q-1")
    config = {"provider": "Practitioner/dr-on-call"}
    first = handle(ev, ctx(fhir, config))  # type: ignore[arg-type]
    fhir.apply(first)
    again = handle(ev, ctx(fhir, config))  # type: ignore[arg-type]
    fhir.apply(again)
    (task,) = fhir.all("Task")
    assert task.priority == "routine"
    assert task.owner.reference == "Practitioner/dr-on-call"
    assert first.emits[0].id == again.emits[0].id


def test_no_provider_is_an_error_without_the_question_text() -> None:
    with pytest.raises(HandlerError) as info:
        handle(ask(), ctx(FakeFhir()))  # type: ignore[arg-type]
    assert "no provider" in str(info.value)
    assert QUESTION not in str(info.value)
