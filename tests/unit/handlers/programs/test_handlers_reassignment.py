"""Caseload reassignment: the sweeper finds the patients of a care manager who left or is over
capacity, and the handler moves their care team, outreach requests and open Tasks to the care
manager with the most room, or asks the pool to assign one when everybody is full."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from carecoord.catalog import CareManagerReassign, CareManagerReassigned
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.errors import MalformedEvent
from carecoord.handlers.care.model import Month
from carecoord.handlers.jobs.sweeper import sweep, sweep_config
from carecoord.handlers.loader import load_handlers
from carecoord.handlers.programs import care_tasks, enrolment, outreach, reassignment
from carecoord.handlers.programs.caseload import caseload_patients
from support.care_management import Runner, attempted, enrolled

SPECS = [*enrolment.HANDLERS, *outreach.HANDLERS, *care_tasks.HANDLERS, *reassignment.HANDLERS]
A, B, C = "Practitioner/cm-a", "Practitioner/cm-b", "Practitioner/cm-c"
MAY = Month(2024, 5)


def _config(*care_managers: dict[str, Any]) -> dict[str, Any]:
    return {
        "care_managers": list(care_managers),
        "supervisor": "Practitioner/sup",
        "pool": "Organization/cm-pool",
        "lead_care_manager": "Practitioner/lead",
    }


def _sweep(run: Runner, now: datetime) -> list[CloudEvent]:
    """The sweep with the reassignment handler enabled (its config nested, as sweep_config does)."""
    return sweep(run.fhir, now, {**run.config, "reassignment": run.config})


def _reassign_events(run: Runner, now: datetime) -> list[CloudEvent]:
    return [e for e in _sweep(run, now) if e.type == CareManagerReassign.event_type]


def _team_manager(run: Runner, plan: dict[str, Any]) -> str:
    [link] = plan["careTeam"]  # the standalone US Core CareTeam
    team = run.fhir.store[tuple(link["reference"].split("/"))]  # type: ignore[index]
    [member] = [
        p["member"]["reference"]
        for p in team["participant"]
        if any(c["code"] == "768820003" for r in p["role"] for c in r["coding"])
    ]
    return str(member)


def _of(run: Runner, rtype: str, patient: str) -> list[dict[str, Any]]:
    ref = {"reference": f"Patient/{patient}"}
    return [r for r in run.fhir.all(rtype) if ref in (r.get("subject"), r.get("for"))]


def _reassign(patient: str, care_manager: str, reason: str, month: str = "2024-05") -> CloudEvent:
    data = {"care_manager": care_manager, "reason": reason, "month": month}
    return new_event(
        CareManagerReassign.event_type,
        patient,
        data,
        id=f"manual-reassign-{patient}-{reason}",
        time=datetime(2024, 5, 20, tzinfo=UTC),
    )


def test_patients_of_a_care_manager_who_left_move_with_their_outreach_and_open_tasks() -> None:
    run = Runner(SPECS, _config({"reference": A, "active": False}, {"reference": B}))
    for patient in ("p1", "p2"):  # enrolled while A was still working (named explicitly)
        run.run(enrolled(patient, care_manager=A))
    run.run(attempted("p1", 0, "wrong-number", by=A))  # a verify-contact Task owned by A
    done = next(t for t in _of(run, "Task", "p2") if t["code"]["coding"][0]["code"] == "assessment")
    done["status"] = "completed"

    events = _reassign_events(run, datetime(2024, 5, 20, tzinfo=UTC))
    assert [(e.id, e.data["reason"]) for e in events] == [
        (f"sweep:reassign:{p}:{A}:2024-05", "left") for p in ("p1", "p2")
    ]
    for event in events:
        run.run(event)

    for patient in ("p1", "p2"):
        [plan] = _of(run, "CarePlan", patient)
        assert _team_manager(run, plan) == B and plan["author"] == {"reference": B}
        [request] = _of(run, "CommunicationRequest", patient)
        assert request["requester"] == {"reference": B}
    open_owners = {
        (t["code"]["coding"][0]["code"], t["owner"]["reference"])
        for t in run.fhir.all("Task")
        if t["status"] != "completed"
    }
    assert ("verify-contact-details", B) in open_owners
    assert {owner for _, owner in open_owners} == {B}
    assert done["owner"] == {"reference": A}  # finished work keeps who did it
    assert caseload_patients(run.fhir, B, MAY) == {"p1", "p2"}
    assert caseload_patients(run.fhir, A, MAY) == set()
    moved = [e for e in run.emitted if e.type == CareManagerReassigned.event_type]
    assert sorted(e.subject for e in moved) == ["Patient/p1", "Patient/p2"]
    assert all(e.data["care_manager"] == B and e.data["previous"] == A for e in moved)

    # replaying the events (and sweeping again) changes nothing
    before = run.fhir.transactions
    for event in events:
        assert run.run(event).wrote is False
    assert run.fhir.transactions == before
    # re-announced under the same ids: nothing new for a consumer that dedupes on the event id
    assert len({e.id for e in run.emitted if e.type == CareManagerReassigned.event_type}) == 2
    assert _reassign_events(run, datetime(2024, 5, 20, 0, 5, tzinfo=UTC)) == []


def test_a_patient_whose_monthly_request_is_not_created_yet_is_moved_too() -> None:
    run = Runner(SPECS, _config({"reference": A, "active": False}, {"reference": B}))
    run.run(enrolled("p1", care_manager=A))
    june = datetime(2024, 6, 1, 8, tzinfo=UTC)
    events = _sweep(run, june)
    [move] = [e for e in events if e.type == CareManagerReassign.event_type]
    assert move.id == f"sweep:reassign:p1:{A}:2024-06"
    run.run(move)
    [due] = [e for e in events if e.type == "carecoord.outreach.due"]
    run.run(due)  # the June request follows the care team: it names B
    june_requests = [
        r
        for r in _of(run, "CommunicationRequest", "p1")
        if r["occurrencePeriod"]["start"] == "2024-06-01"
    ]
    assert [r["requester"] for r in june_requests] == [{"reference": B}]
    assert _reassign_events(run, june) == []


def test_everybody_full_asks_the_pool_once_and_moves_the_patient_when_room_appears() -> None:
    run = Runner(SPECS, _config({"reference": A, "active": False}, {"reference": B, "capacity": 1}))
    run.run(enrolled("q1", care_manager=B))
    run.run(enrolled("p1", care_manager=A))
    [event] = _reassign_events(run, datetime(2024, 5, 20, tzinfo=UTC))
    run.run(event)
    run.run(event)  # replay
    [task] = run.fhir.tasks("assign-care-manager")
    [plan] = _of(run, "CarePlan", "p1")
    assert task["owner"] == {"reference": "Organization/cm-pool"}
    assert task["for"] == {"reference": "Patient/p1"}
    assert task["focus"] == {"reference": f"CarePlan/{plan['id']}"}
    assert task["statusReason"]["coding"][0]["code"] == "no-capacity"
    assert _team_manager(run, plan) == A  # stays put until somebody has room
    assert not [e for e in run.emitted if e.type == CareManagerReassigned.event_type]

    run.config["care_managers"] = [{"reference": A, "active": False}, {"reference": B}]
    [again] = _reassign_events(run, datetime(2024, 5, 20, 0, 5, tzinfo=UTC))
    assert again.id == event.id  # the next sweep re-sends the same trigger
    run.run(again)
    assert _team_manager(run, _of(run, "CarePlan", "p1")[0]) == B
    assert len(run.fhir.tasks("assign-care-manager")) == 1


def test_a_care_manager_of_another_program_keeps_the_patient() -> None:
    config = _config({"reference": A, "active": False}, {"reference": B}, {"reference": C})
    run = Runner(SPECS, config)
    run.run(enrolled("p1", care_manager=A, start="2024-05-03"))
    run.run(enrolled("p1", care_manager=C, start="2024-05-04", program="BHI"))
    [event] = _reassign_events(run, datetime(2024, 5, 20, tzinfo=UTC))
    run.run(event)
    assert sorted(_team_manager(run, p) for p in _of(run, "CarePlan", "p1")) == [C, C]
    assert run.emitted[-1].data["assignment"] == "continuity"


def test_over_capacity_moves_the_most_recently_enrolled_excess() -> None:
    run = Runner(SPECS, _config({"reference": A, "capacity": 2}, {"reference": B}))
    for day, patient in ((3, "p-late"), (1, "p-early"), (2, "p-mid")):
        run.run(enrolled(patient, care_manager=A, start=f"2024-05-0{day}"))
    events = _reassign_events(run, datetime(2024, 5, 20, tzinfo=UTC))
    assert [(e.subject, e.data["reason"]) for e in events] == [("Patient/p-late", "over-capacity")]
    run.run(events[0])
    assert caseload_patients(run.fhir, A, MAY) == {"p-early", "p-mid"}
    assert caseload_patients(run.fhir, B, MAY) == {"p-late"}
    assert _reassign_events(run, datetime(2024, 5, 20, 0, 5, tzinfo=UTC)) == []
    # a stale trigger for a care manager no longer over capacity changes nothing
    assert run.run(_reassign("p-early", A, "over-capacity")).wrote is False
    assert _team_manager(run, _of(run, "CarePlan", "p-early")[0]) == A


def test_an_integration_announcing_a_departure_moves_the_patient_whatever_the_config() -> None:
    run = Runner(SPECS, _config({"reference": A}, {"reference": B}))
    run.run(enrolled("p1", care_manager=A))
    run.run(_reassign("p1", A, "left"))
    assert _team_manager(run, _of(run, "CarePlan", "p1")[0]) == B


def test_invalid_reason_is_a_malformed_event() -> None:
    run = Runner(SPECS, _config({"reference": A}, {"reference": B}))
    with pytest.raises(MalformedEvent, match="reason"):
        run.run(_reassign("p1", A, "retired"))


def test_the_sweep_reassigns_only_with_the_reassignment_handler_configured() -> None:
    config = _config({"reference": A, "active": False}, {"reference": B})
    run = Runner(SPECS, config)
    run.run(enrolled("p1", care_manager=A))
    now = datetime(2024, 5, 20, tzinfo=UTC)
    assert not [e for e in sweep(run.fhir, now, config) if e.type == CareManagerReassign.event_type]
    table = load_handlers(config={"reassignment": {"care_managers": config["care_managers"]}})
    merged = sweep_config(table.configs)
    assert [
        e.subject for e in sweep(run.fhir, now, merged) if e.type == CareManagerReassign.event_type
    ] == ["Patient/p1"]
