"""The sweeper's side of reassignment (due_reassignments) and replacing a care coordinator,
decided on resources put straight into the in-memory server."""

from __future__ import annotations

from datetime import date
from typing import Any

from carecoord.caremodel import terminology as t
from carecoord.handlers.care.model import CARE_PLAN_ID, OUTREACH_REQUEST_ID, CareConfig, Month
from carecoord.handlers.programs.reassignment import (
    DueReassignment,
    _enrolled_with,
    _replace_coordinator,
    _still_over_capacity,
    due_reassignments,
)
from carecoord.testing import InMemoryFhir

MAY = Month(2024, 5)
A, B = "Practitioner/a", "Practitioner/b"


def config(*managers: dict[str, Any], capacity: int = 10) -> CareConfig:
    return CareConfig.model_validate({"capacity": capacity, "care_managers": list(managers)})


def enrol(
    fhir: InMemoryFhir,
    patient: str,
    manager: str,
    start: str | None,
    *,
    status: str = "active",
    monthly: bool = True,
) -> None:
    team = {
        "resourceType": "CareTeam",
        "id": "team",
        "participant": [
            {"role": [t.ROLE_CARE_COORDINATOR.concept_json()], "member": {"reference": manager}}
        ],
    }
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": f"plan-{patient}-{manager[-1]}",
        "status": status,
        "intent": "plan",
        "subject": {"reference": f"Patient/{patient}"},
        "identifier": [{"system": CARE_PLAN_ID, "value": f"{patient}:CCM:{start}"}],
        "category": [t.PROGRAMS["CCM"].concept_json()],
        "contained": [team],
        "careTeam": [{"reference": "#team"}],
    }
    if start is not None:
        plan["period"] = {"start": start}
    fhir.put(plan)
    if monthly:
        fhir.put(
            {
                "resourceType": "CommunicationRequest",
                "id": f"cr-{patient}-{manager[-1]}",
                "status": "active",
                "authoredOn": "2024-05-02",
                "identifier": [{"system": OUTREACH_REQUEST_ID, "value": f"{patient}:CCM:2024-05"}],
                "subject": {"reference": f"Patient/{patient}"},
                "requester": {"reference": manager},
            }
        )


def test_nothing_is_due_while_everybody_is_active_and_within_capacity() -> None:
    fhir = InMemoryFhir()
    enrol(fhir, "p1", A, "2024-05-01")
    enrol(fhir, "p2", A, "2024-05-02")
    assert due_reassignments(fhir, config({"reference": A, "capacity": 2}), MAY) == []


def test_the_most_recently_enrolled_beyond_capacity_move_in_patient_order() -> None:
    fhir = InMemoryFhir()
    for patient, day in (("p1", "01"), ("p4", "04"), ("p2", "02"), ("p3", "04")):
        enrol(fhir, patient, A, f"2024-05-{day}")
    enrol(fhir, "p9", B, "2024-05-09")
    due = due_reassignments(fhir, config({"reference": A, "capacity": 2}, {"reference": B}), MAY)
    assert due == [
        DueReassignment("p3", A, "over-capacity"),
        DueReassignment("p4", A, "over-capacity"),
    ]
    one = due_reassignments(fhir, config({"reference": A, "capacity": 3}, {"reference": B}), MAY)
    assert one == [DueReassignment("p4", A, "over-capacity")]  # the later id on the same day


def test_every_care_manager_is_checked_and_their_moves_add_up() -> None:
    fhir = InMemoryFhir()
    enrol(fhir, "p1", A, "2024-05-01")
    enrol(fhir, "p2", B, "2024-05-01")
    enrol(fhir, "p3", B, "2024-05-02")
    within_first = config({"reference": A, "capacity": 1}, {"reference": B, "capacity": 1})
    assert due_reassignments(fhir, within_first, MAY) == [DueReassignment("p3", B, "over-capacity")]
    both = config({"reference": A, "active": False}, {"reference": B, "capacity": 1})
    assert due_reassignments(fhir, both, MAY) == [
        DueReassignment("p1", A, "left"),
        DueReassignment("p3", B, "over-capacity"),
    ]


def test_a_caseload_patient_without_an_active_plan_counts_as_the_earliest() -> None:
    fhir = InMemoryFhir()
    enrol(fhir, "p1", A, "2024-05-01", status="revoked")  # still this month's request
    enrol(fhir, "p2", A, "2024-05-02")
    due = due_reassignments(fhir, config({"reference": A, "capacity": 1}), MAY)
    assert due == [DueReassignment("p2", A, "over-capacity")]


class Recording(InMemoryFhir):
    def __init__(self) -> None:
        super().__init__()
        self.searched: list[str] = []

    def search(self, resource_type: str, params: Any) -> list[Any]:
        self.searched.append(resource_type)
        return super().search(resource_type, params)


def test_plans_are_read_only_when_someone_must_move() -> None:
    fhir = Recording()
    enrol(fhir, "p1", A, "2024-05-01")
    assert due_reassignments(fhir, config({"reference": A, "capacity": 1}), MAY) == []
    assert fhir.searched == ["CommunicationRequest"]


def test_a_patient_without_a_known_enrolment_counts_as_the_earliest() -> None:
    fhir = InMemoryFhir()
    enrol(fhir, "p1", A, None)  # no period start
    enrol(fhir, "p2", A, "2024-05-02")
    due = due_reassignments(fhir, config({"reference": A, "capacity": 1}), MAY)
    assert due == [DueReassignment("p2", A, "over-capacity")]


def test_every_patient_of_a_care_manager_who_left_moves() -> None:
    fhir = InMemoryFhir()
    enrol(fhir, "p2", A, "2024-05-01")
    enrol(fhir, "p1", A, "2024-05-03", monthly=False)  # no monthly request yet
    enrol(fhir, "p3", A, "2024-04-01", status="revoked", monthly=False)  # not active
    enrol(fhir, "p4", B, "2024-05-01")
    due = due_reassignments(fhir, config({"reference": A, "active": False}, {"reference": B}), MAY)
    assert due == [DueReassignment("p1", A, "left"), DueReassignment("p2", A, "left")]


def test_enrolled_with_takes_each_patients_first_start_with_that_care_manager() -> None:
    fhir = InMemoryFhir()
    enrol(fhir, "p1", A, "2024-05-03")
    fhir.put({**fhir.all("CarePlan")[0], "id": "again", "period": {"start": "2024-02-01"}})
    fhir.put({**fhir.all("CarePlan")[0], "id": "later", "period": {"start": "2024-06-01"}})
    enrol(fhir, "p2", B, "2024-05-01")
    enrol(fhir, "p3", A, None)
    plans = fhir.search("CarePlan", [])
    assert _enrolled_with(plans, A) == {"p1": date(2024, 2, 1), "p3": date.min}


def test_still_over_capacity_needs_the_patient_in_a_caseload_over_capacity() -> None:
    fhir = InMemoryFhir()
    enrol(fhir, "p1", A, "2024-05-01")
    enrol(fhir, "p2", A, "2024-05-02")
    assert _still_over_capacity(fhir, config({"reference": A, "capacity": 1}), A, "p2", MAY)
    assert not _still_over_capacity(fhir, config({"reference": A, "capacity": 2}), A, "p2", MAY)
    assert not _still_over_capacity(fhir, config({"reference": A, "capacity": 1}), A, "p9", MAY)


def test_only_the_departing_care_coordinator_is_replaced() -> None:
    coordinator = [t.ROLE_CARE_COORDINATOR.concept_json()]
    team: dict[str, Any] = {
        "participant": [
            {"role": [t.ROLE_PRIMARY_CARE_PHYSICIAN.concept_json()], "member": {"reference": A}},
            {"role": coordinator, "member": {"reference": B}},
            {"role": coordinator, "member": {"reference": A}, "period": {"start": "2024-01-01"}},
            {
                "role": t.ROLE_CARE_COORDINATOR.concept_json(),
                "member": {"reference": A},
            },  # not a list
        ]
    }
    assert _replace_coordinator(team, A, "Practitioner/c", date(2024, 5, 20))
    members = [(p["member"]["reference"], p.get("period")) for p in team["participant"]]
    assert members == [
        (A, None),
        (B, None),
        ("Practitioner/c", {"start": "2024-05-20"}),
        ("Practitioner/c", {"start": "2024-05-20"}),
    ]
    assert _replace_coordinator(team, A, "Practitioner/c", date(2024, 5, 20)) is False
    assert _replace_coordinator({}, A, B, date(2024, 5, 20)) is False
    bare = {
        "participant": [
            {"member": {"reference": A}},
            {"role": [{"text": "x"}], "member": {"reference": A}},
        ]
    }
    assert _replace_coordinator(bare, A, B, date(2024, 5, 20)) is False
