"""carecoord.testing, as a user's own tests use it: a factory for every inbound catalog type, and
`run_events` through the real processor."""

from __future__ import annotations

import inspect

import pytest

from carecoord.catalog import INBOUND, PatientDischarged
from carecoord.core.catalog import parse_data
from carecoord.errors import MalformedEvent
from carecoord.handlers.programs import enrolment, outreach
from carecoord.testing import events, run_events


def _default(event_type: str) -> object:
    factory = events.FACTORIES[event_type]
    required = [
        p
        for p in list(inspect.signature(factory).parameters.values())[1:]
        if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    args = {"task": "Task/t1", "status": "completed", "care_manager": "Practitioner/cm1"}
    args["episode"] = "EpisodeOfCare/e1"
    return factory("p1", *(args[p.name] for p in required))


def test_every_inbound_type_has_a_factory() -> None:
    assert set(events.FACTORIES) == set(INBOUND)


@pytest.mark.parametrize("event_type", sorted(INBOUND))
def test_a_factory_makes_a_valid_event_of_its_type(event_type: str) -> None:
    event = _default(event_type)
    assert event.type == event_type  # type: ignore[attr-defined]
    assert event.subject == "Patient/p1"  # type: ignore[attr-defined]
    parse_data(event, INBOUND[event_type])  # type: ignore[arg-type]


def test_of_makes_the_event_of_a_model() -> None:
    data = PatientDischarged.model_validate(events.patient_discharged("p1").data)
    event = events.of(data, "p2", id="x")
    assert (event.type, event.subject, event.id) == (
        "carecoord.patient.discharged",
        "Patient/p2",
        "x",
    )
    assert event.data["setting"] == "inpatient"


def test_run_events_goes_through_the_processor_and_keeps_dead_letters() -> None:
    attempts = [
        events.outreach_attempted("p1", id=f"a{n}", attempted_at=f"2030-01-0{n + 2}T10:00:00Z")
        for n in range(3)
    ]
    poison = events.time_logged("p1", minutes=-5)  # fails the catalog schema; nobody handles it
    run = run_events(
        [*enrolment.HANDLERS, *outreach.HANDLERS],
        events.patient_enrolled("p1", care_manager="Practitioner/cm1"),
        *attempts,
        events.clinical_question("p1"),
        poison,
    )
    assert run.emitted_types == ["carecoord.outreach.escalated"]
    assert [(e.id, type(err)) for e, err in run.dead_letters] == [
        ("test:carecoord.clinical.question:p1", MalformedEvent),
        (poison.id, MalformedEvent),
    ]
    assert any(
        t["code"]["coding"][0]["code"] == "outreach-escalation" for t in run.fhir.all("Task")
    )
