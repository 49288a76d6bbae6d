"""Who takes a patient (programs/caseload.py): a named care manager, continuity of care
(never with one on leave), the most room, nobody; and how a caseload is counted."""

from __future__ import annotations

from typing import Any

from carecoord.handlers.care.model import OUTREACH_REQUEST_ID, CareConfig, Month
from carecoord.handlers.programs.caseload import (
    Assignment,
    assign_care_manager,
    caseload_patients,
    choose_care_manager,
)
from carecoord.testing import InMemoryFhir

MARCH = Month(2026, 3)
A, B, C = "Practitioner/a", "Practitioner/b", "Practitioner/c"


def config(*managers: dict[str, Any], capacity: int = 3) -> CareConfig:
    return CareConfig.model_validate({"capacity": capacity, "care_managers": list(managers)})


def monthly(
    fhir: InMemoryFhir,
    patient: str,
    requester: str,
    *,
    label: str = "2026-03",
    status: str = "active",
    authored: str = "2026-03-02",
) -> None:
    fhir.put(
        {
            "resourceType": "CommunicationRequest",
            "id": f"cr-{patient}-{label}-{requester[-1]}",
            "status": status,
            "authoredOn": authored,
            "identifier": [{"system": OUTREACH_REQUEST_ID, "value": f"{patient}:CCM:{label}"}],
            "subject": {"reference": f"Patient/{patient}"},
            "requester": {"reference": requester},
        }
    )


def test_a_care_manager_on_leave_does_not_keep_the_patient_by_continuity() -> None:
    cfg = config({"reference": A, "active": False}, {"reference": B})
    got = assign_care_manager(InMemoryFhir(), cfg, "p1", MARCH, current=[A])
    assert got == Assignment(B, "most-room")


def test_continuity_takes_the_first_active_current_care_manager() -> None:
    cfg = config({"reference": A, "active": False}, {"reference": B}, {"reference": C})
    fhir = InMemoryFhir()
    assert assign_care_manager(fhir, cfg, "p1", MARCH, current=[A, C, B]) == Assignment(
        C, "continuity"
    )
    # One not configured counts as active (an event named them).
    outside = "Practitioner/x"
    assert assign_care_manager(fhir, cfg, "p1", MARCH, current=[outside]) == Assignment(
        outside, "continuity"
    )


def test_an_excluded_care_manager_keeps_nobody() -> None:
    cfg = config({"reference": A}, {"reference": B})
    got = assign_care_manager(InMemoryFhir(), cfg, "p1", MARCH, current=[A], exclude=[A])
    assert got == Assignment(B, "most-room")


def test_a_named_care_manager_wins_even_on_leave() -> None:
    cfg = config({"reference": A, "active": False})
    assert assign_care_manager(InMemoryFhir(), cfg, "p1", MARCH, named=A) == Assignment(A, "named")


def test_most_room_counts_caseloads_without_the_patient_themself() -> None:
    fhir = InMemoryFhir()
    cfg = config({"reference": B}, {"reference": A}, capacity=2)
    monthly(fhir, "p1", A)  # the patient being assigned: not counted against A
    monthly(fhir, "p2", B)
    assert assign_care_manager(fhir, cfg, "p1", MARCH) == Assignment(A, "most-room")
    monthly(fhir, "p3", A)
    assert assign_care_manager(fhir, cfg, "p1", MARCH) == Assignment(B, "most-room")


def test_nobody_with_room_is_no_capacity() -> None:
    fhir = InMemoryFhir()
    cfg = config({"reference": A}, {"reference": B, "active": False}, capacity=1)
    monthly(fhir, "p2", A)
    assert assign_care_manager(fhir, cfg, "p1", MARCH) == Assignment(None, "no-capacity")
    assert assign_care_manager(fhir, cfg, "p1", MARCH, exclude=[A]) == Assignment(
        None, "no-capacity"
    )


def test_choose_the_most_room_ties_in_config_order() -> None:
    cfg = config({"reference": A}, {"reference": B, "capacity": 5}, {"reference": C})
    assert choose_care_manager(cfg, {A: 0, B: 2, C: 0}) == A  # 3, 3, 3: the first
    assert choose_care_manager(cfg, {A: 1, B: 4, C: 0}) == C
    assert choose_care_manager(cfg, {A: 0, B: 0, C: 0}) == B
    assert choose_care_manager(cfg, {A: 0, B: 0, C: 0}, exclude=[B]) == A
    assert choose_care_manager(cfg, {}) == B  # no load known: capacity alone
    assert choose_care_manager(config({"reference": A}, {"reference": B}), {B: 0}) == A
    assert choose_care_manager(cfg, {A: 3, B: 5, C: 3}) is None  # full is not room
    on_leave = config({"reference": A, "active": False}, {"reference": B})
    assert choose_care_manager(on_leave, {A: 0, B: 2}) == B


def test_caseload_is_the_months_monthly_requests_naming_the_care_manager() -> None:
    fhir = InMemoryFhir()
    monthly(fhir, "p1", A)
    monthly(fhir, "p1", A, label="2026-02", authored="2026-03-01")  # February's request
    monthly(fhir, "p2", A, status="entered-in-error")
    monthly(fhir, "p3", A, status="completed")  # reached: still in the caseload
    monthly(fhir, "p4", B)
    monthly(fhir, "p5", A, authored="2026-04-01")  # outside the month
    fhir.put(
        {
            "resourceType": "CommunicationRequest",
            "id": "other",
            "status": "active",
            "authoredOn": "2026-03-03",
            "subject": {"reference": "Patient/p6"},
            "requester": {"reference": A},
        }
    )  # not an outreach request
    assert caseload_patients(fhir, A, MARCH) == {"p1", "p3"}
    assert caseload_patients(fhir, B, MARCH) == {"p4"}


class Strict:
    """A server that answers every CommunicationRequest search with everything it holds (it
    ignores the parameters), and records the searches."""

    def __init__(self, fhir: InMemoryFhir) -> None:
        self.fhir = fhir
        self.searches: list[tuple[str, list[tuple[str, str]]]] = []

    def read(self, resource_type: str, resource_id: str) -> Any:
        return self.fhir.read(resource_type, resource_id)

    def search(self, resource_type: str, params: Any) -> list[Any]:
        self.searches.append((resource_type, list(params)))
        return self.fhir.search(resource_type, [])


def test_the_caseload_search_and_its_refiltering_on_a_server_ignoring_parameters() -> None:
    fhir = InMemoryFhir()
    monthly(fhir, "p0", B)  # listed first, another care manager's
    monthly(fhir, "p1", A)
    monthly(fhir, "p2", A, label="2026-02")
    server = Strict(fhir)
    assert caseload_patients(server, A, MARCH) == {"p1"}
    assert server.searches == [
        (
            "CommunicationRequest",
            [("requester", A), ("authored", "ge2026-03-01"), ("authored", "le2026-03-31")],
        )
    ]


def test_only_active_care_managers_not_excluded_have_their_caseload_read() -> None:
    cfg = config({"reference": A}, {"reference": B, "active": False}, {"reference": C})
    server = Strict(InMemoryFhir())
    assign_care_manager(server, cfg, "p1", MARCH, exclude=[C])
    assert [params[0] for _, params in server.searches] == [("requester", A)]
