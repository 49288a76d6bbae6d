"""Enrolment and caseload: CarePlan + its standalone CareTeam, the month's outreach request and work
Tasks, caseload assignment without overloading anyone, replays that change nothing."""

from __future__ import annotations

import pytest

from carecoord.errors import MalformedEvent
from carecoord.handlers.care.model import CareConfig, Month
from carecoord.handlers.programs import care_tasks, enrolment, outreach
from carecoord.handlers.programs.caseload import choose_care_manager
from support.care_management import Runner, enrolled

SPECS = [*enrolment.HANDLERS, *outreach.HANDLERS, *care_tasks.HANDLERS]
TWO_MANAGERS = {
    "care_managers": [
        {"reference": "Practitioner/cm1", "capacity": 2},
        {"reference": "Practitioner/cm2", "capacity": 1},
    ],
    "pool": "Organization/care-coordinators",
}


def _team(run: Runner, plan: dict) -> dict[str, str]:
    """The roles of the plan's standalone US Core CareTeam (CarePlan.careTeam -> CareTeam)."""
    assert "contained" not in plan
    [link] = plan["careTeam"]
    team = run.fhir.store[tuple(link["reference"].split("/"))]  # type: ignore[index]
    assert team["subject"] == plan["subject"]
    return {
        p["role"][0]["coding"][0]["code"]: p["member"]["reference"] for p in team["participant"]
    }


def test_enrolment_writes_plan_team_request_and_tasks_for_the_month_of_start() -> None:
    run = Runner(SPECS)
    run.run(enrolled("p1", start="2023-11-20", care_manager="Practitioner/cm9",
                     conditions=["Condition/dm2"]))  # fmt: skip
    [plan] = run.fhir.all("CarePlan")
    assert plan["status"] == "active" and plan["intent"] == "plan"
    assert {c["coding"][0]["code"] for c in plan["category"]} == {"assess-plan", "CCM"}
    assert plan["period"]["start"] == "2023-11-20"
    assert plan["addresses"] == [{"reference": "Condition/dm2"}]
    assert _team(run, plan) == {"768820003": "Practitioner/cm9", "446050000": "Practitioner/doc"}
    assert all("detail" not in a for a in plan["activity"])
    [request] = run.fhir.all("CommunicationRequest")
    assert request["occurrencePeriod"] == {"start": "2023-11-01", "end": "2023-11-30"}
    assert request["requester"] == {"reference": "Practitioner/cm9"}
    assert request["basedOn"] == [{"reference": f"CarePlan/{plan['id']}"}]
    activity = {a["reference"]["reference"] for a in plan["activity"]}
    assert f"CommunicationRequest/{request['id']}" in activity
    codes = sorted(t["code"]["coding"][0]["code"] for t in run.fhir.all("Task"))
    assert codes == ["assessment", "care-plan-review", "medication-reconciliation"]
    review = run.fhir.tasks("care-plan-review")[0]
    assert review["restriction"]["period"]["end"] == "2023-11-30"
    assert f"Task/{review['id']}" in activity


def test_replaying_an_enrolment_creates_nothing() -> None:
    run = Runner(SPECS, TWO_MANAGERS)
    run.run(enrolled("p1"))
    before = {k: dict(v) for k, v in run.fhir.store.items()}
    assert run.run(enrolled("p1")).wrote is False
    assert run.fhir.store == before


def test_without_a_named_care_manager_the_one_with_most_room_is_assigned() -> None:
    run = Runner(SPECS, TWO_MANAGERS)
    for pid in ("p1", "p2", "p3"):
        run.run(enrolled(pid))
    managers = sorted(_team(run, p)["768820003"] for p in run.fhir.all("CarePlan"))
    # cm1 (room 2) > cm2 (room 1) -> cm1; then a tie (1, 1) -> config order -> cm1; then cm2
    assert managers == ["Practitioner/cm1", "Practitioner/cm1", "Practitioner/cm2"]
    assert run.fhir.tasks("assign-care-manager") == []


def test_when_everybody_is_full_the_pool_gets_a_task_and_nobody_is_overloaded() -> None:
    run = Runner(SPECS, TWO_MANAGERS)
    for pid in ("p1", "p2", "p3", "p4"):
        run.run(enrolled(pid))
    plans = {p["subject"]["reference"]: p for p in run.fhir.all("CarePlan")}
    assert "768820003" not in _team(run, plans["Patient/p4"])
    [task] = run.fhir.tasks("assign-care-manager")
    assert task["for"] == {"reference": "Patient/p4"}
    assert task["owner"] == {"reference": "Organization/care-coordinators"}
    assert task["status"] == "requested"
    assert task["focus"] == {"reference": f"CarePlan/{plans['Patient/p4']['id']}"}
    requesters = [r["requester"]["reference"] for r in run.fhir.all("CommunicationRequest")]
    assert requesters.count("Practitioner/cm1") == 2 and requesters.count("Practitioner/cm2") == 1


def test_a_second_program_stays_with_the_patients_care_manager() -> None:
    run = Runner(SPECS, TWO_MANAGERS)
    run.run(enrolled("p1", care_manager="Practitioner/cm2"))
    run.run(enrolled("p1", program="RPM"))
    assert {_team(run, p)["768820003"] for p in run.fhir.all("CarePlan")} == {"Practitioner/cm2"}


def test_capacity_counts_patients_of_the_enrolment_month_only() -> None:
    run = Runner(SPECS, {"care_managers": [{"reference": "Practitioner/cm1", "capacity": 1}]})
    run.run(enrolled("p1", start="2024-04-10"))
    run.run(enrolled("p2", start="2024-05-02"))  # April's patient is not in May's count
    assert {_team(run, p).get("768820003") for p in run.fhir.all("CarePlan")} == {
        "Practitioner/cm1"
    }


def test_choose_care_manager_skips_inactive_and_full_ones() -> None:
    cfg = CareConfig.from_mapping(
        {
            "capacity": 3,
            "care_managers": [
                {"reference": "Practitioner/a", "active": False},
                {"reference": "Practitioner/b"},
                {"reference": "Practitioner/c", "capacity": 10},
            ],
        }
    )
    assert choose_care_manager(cfg, {"Practitioner/b": 0, "Practitioner/c": 8}) == "Practitioner/b"
    assert choose_care_manager(cfg, {"Practitioner/b": 3, "Practitioner/c": 10}) is None


@pytest.mark.parametrize(
    "data", [{"program": "XYZ"}, {"conditions": ["E11.9"]}, {"provider": "doc"}, {"start": "soon"}]
)
def test_invalid_enrolment_data_is_malformed(data: dict) -> None:
    with pytest.raises(MalformedEvent):
        Runner(SPECS).run(enrolled("p1", **data))


def test_month_boundaries() -> None:
    assert Month.parse("2024-02").end.isoformat() == "2024-02-29"
    assert Month.parse("2024-12").next() == Month(2025, 1)
