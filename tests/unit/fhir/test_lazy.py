"""The handlers' lean path (carecoord.fhir.lazy): resources built and read as JSON, validated
only where read, and sent as the same JSON fhir.resources would have made of them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.communicationrequest import CommunicationRequest
from fhir.resources.R4B.task import Task

from carecoord.caremodel._build import finish
from carecoord.fhir import lazy
from carecoord.fhir.errors import FhirResponseInvalid
from carecoord.fhir.lazy import LazyResource, LeanBuildMismatch, lean
from carecoord.fhir.models import parse_resource, revised, to_json
from carecoord.handlers.loader import load_handlers
from carecoord.testing import events, run_events

TASK = {
    "resourceType": "Task",
    "id": "t1",
    "status": "requested",
    "intent": "order",
    "for": {"reference": "Patient/p1"},
}


def test_a_read_resource_is_json_until_an_element_is_read() -> None:
    with lean():
        task = parse_resource(dict(TASK))
    assert type(task) is LazyResource and isinstance(task, Task)
    assert (task.get_resource_type(), task.id) == ("Task", "t1")
    assert task.json() is not None  # type and id answered without validating
    assert task.for_fhir.reference == "Patient/p1"  # validated on first use of an element
    assert task.json() is None


def test_outside_lean_everything_is_validated_at_once() -> None:
    task = parse_resource(dict(TASK))
    assert type(task) is Task


def test_an_invalid_server_resource_fails_when_read_as_the_eager_parse_does() -> None:
    with lean():
        task = parse_resource({**TASK, "status": 42})
    with pytest.raises(FhirResponseInvalid, match="invalid Task from server"):
        _ = task.status


def test_to_json_is_a_copy_of_the_json_and_edits_of_the_model_are_sent() -> None:
    with lean():
        task = parse_resource(dict(TASK))
        body = to_json(task)
        body["for"]["reference"] = "Patient/other"
        assert to_json(task)["for"] == {"reference": "Patient/p1"}
        task.status = "cancelled"  # a mutation goes to the validated model
        assert to_json(task)["status"] == "cancelled"
        edited = revised(task, {**to_json(task), "status": "completed"})
    assert isinstance(edited, Task) and edited.status == "completed"


def test_a_builder_json_that_fhir_resources_would_write_otherwise_is_caught() -> None:
    data = {
        "resourceType": "CommunicationRequest",
        "status": "active",
        "doNotPerform": "true",  # validation makes it the boolean true
    }
    lazy.mismatches.clear()
    with lean(), pytest.raises(LeanBuildMismatch):
        finish(CommunicationRequest, data, "R4")
    assert lazy.mismatches
    lazy.mismatches.clear()
    del data["doNotPerform"]
    with lean():
        utc = finish(
            CommunicationRequest, {**data, "authoredOn": "2030-01-01T00:00:00+00:00"}, "R4"
        )
    assert to_json(utc)["authoredOn"] == "2030-01-01T00:00:00Z"  # as validation writes UTC
    assert to_json(utc) == to_json(CommunicationRequest.model_validate(to_json(utc)))


def test_a_read_resource_edited_and_rebuilt_keeps_the_servers_instants() -> None:
    """A handler's edit of a read resource goes through a builder: the server's "…43.067Z"
    (validation would write "…43.067000Z") is the same instant, sent as the server wrote it."""
    lazy.mismatches.clear()
    server = {
        "resourceType": "CommunicationRequest",
        "id": "cr1",
        "meta": {"versionId": "1", "lastUpdated": "2026-12-07T07:16:43.067Z"},
        "status": "active",
    }
    with lean():
        read = parse_resource(server)
        rebuilt = finish(CommunicationRequest, {**to_json(read), "status": "completed"}, "R4")
    assert not lazy.mismatches
    assert to_json(rebuilt)["meta"]["lastUpdated"] == "2026-12-07T07:16:43.067Z"
    assert to_json(rebuilt)["status"] == "completed"


def test_a_month_of_events_goes_out_as_the_validated_json_of_every_builder() -> None:
    """The bench's mix through every built-in handler: each resource a builder made on the lean
    path equals fhir.resources' JSON of it (the conftest's check would fail this test), and the
    writes really went out lean (not validated per event)."""
    made: list[LazyResource] = []
    original = LazyResource.__init__

    def record(self: LazyResource, *args: object) -> None:
        original(self, *args)  # type: ignore[arg-type]
        made.append(self)

    table = load_handlers(config={"referrals": {"requester": "Organization/clinic"}})
    day = "2030-01-"
    mix = [
        events.patient_enrolled("p1", care_manager="Practitioner/cm1", start=f"{day}02"),
        *(
            events.outreach_attempted(
                "p1", id=f"a{n}", outcome="no-answer", attempted_at=f"{day}0{n + 3}T10:00:00Z"
            )
            for n in range(3)
        ),
        events.time_logged("p1", minutes=25, performed_at=f"{day}10T10:00:00+00:00"),
        events.sdoh_need_identified("p1"),
    ]
    LazyResource.__init__ = record  # type: ignore[method-assign]
    try:
        run = run_events(
            table.specs,
            *mix,
            config=table.configs,
            now=datetime(2030, 1, 12, tzinfo=UTC),
        )
    finally:
        LazyResource.__init__ = original  # type: ignore[method-assign]
    assert run.dead_letters == []
    assert "carecoord.outreach.escalated" in run.emitted_types
    built = {r.get_resource_type() for r in made}
    assert {"CarePlan", "CommunicationRequest", "Communication", "Task", "Basic"} <= built
    assert run.fhir.all("ChargeItem")


def test_a_lazy_r4_task_moves_on_as_an_r4_task() -> None:
    """The FHIR version of a lazy resource is its model's (R4 statusReason: a CodeableConcept)."""
    from carecoord.caremodel.workflow import transition

    with lean():
        task = parse_resource(dict(TASK))
        done = transition(task, "cancelled", reason="no longer needed")
        assert to_json(done)["statusReason"] == {"text": "no longer needed"}


def test_reading_an_element_validates_that_element_alone() -> None:
    """issue 27: a response is parsed only as far as the handler reads it."""
    with lean():
        task = parse_resource({**TASK, "priority": 42})  # invalid, but nobody reads it yet
    assert task.status == "requested"
    assert task.json() is not None  # a str handed out: the JSON is still the one to send
    assert repr(task) == "<lazy Task (read in part)>"
    with pytest.raises(FhirResponseInvalid, match="invalid Task from server"):
        _ = task.priority


def test_an_element_handed_out_is_the_models_so_an_edit_of_it_is_sent() -> None:
    with lean():
        task = parse_resource(dict(TASK))
        owner = task.for_fhir
        owner.reference = "Patient/p2"
        assert to_json(task)["for"] == {"reference": "Patient/p2"}
        assert repr(task) == "<lazy Task (read in part)>"  # sent without validating the rest
        assert task.model().for_fhir is owner


def test_each_element_read_alone_is_what_the_validated_model_holds() -> None:
    """Every element of every resource the bench's month writes, read lazily, equals the
    validated model's (same types: models, datetimes, lists)."""
    table = load_handlers(config={"referrals": {"requester": "Organization/clinic"}})
    run = run_events(
        table.specs,
        events.patient_enrolled("p1", care_manager="Practitioner/cm1", start="2030-01-02"),
        *(
            events.outreach_attempted(
                "p1", id=f"a{n}", outcome="no-answer", attempted_at=f"2030-01-0{n + 3}T10:00:00Z"
            )
            for n in range(3)
        ),
        events.time_logged("p1", minutes=25, performed_at="2030-01-10T10:00:00+00:00"),
        config=table.configs,
        now=datetime(2030, 1, 12, tzinfo=UTC),
    )
    compared = 0
    for rtype in ("CarePlan", "CommunicationRequest", "Communication", "Task", "ChargeItem"):
        for data in run.fhir.all(rtype):
            model = parse_resource(data)
            with lean():
                lazy_one = parse_resource(data)
            for name in type(model).model_fields:
                value = getattr(lazy_one, name)
                assert value == getattr(model, name), (rtype, name)
                assert type(value) is type(getattr(model, name)), (rtype, name)
                compared += value is not None
            assert to_json(lazy_one) == to_json(model), rtype  # elements handed out written back
    assert compared > 50


def test_a_transaction_sends_a_read_resource_as_read_or_as_edited() -> None:
    """writes_to_bundle puts a lean resource's own JSON into the transaction (no copy), and the
    model's JSON once an element was handed out (it may have been edited) or it was validated."""
    from carecoord.core.effects import Update
    from carecoord.fhir.bundles import writes_to_bundle

    with lean():
        untouched = parse_resource(dict(TASK))
        handed_out = parse_resource({**TASK, "id": "t2"})
        handed_out.for_fhir.reference = "Patient/p2"
        validated = parse_resource({**TASK, "id": "t3"})
        validated.status = "cancelled"
        bundle = writes_to_bundle([Update(r, "1") for r in (untouched, handed_out, validated)])
    sent = [entry["resource"] for entry in bundle["entry"]]
    assert sent[0] is untouched.json()
    assert sent[1]["for"] == {"reference": "Patient/p2"}
    assert sent[2]["status"] == "cancelled"
