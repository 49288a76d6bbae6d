"""Care builders: the elements a care manager or an EHR integrator would check."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from carecoord.caremodel import builders as care
from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import identifier_system
from carecoord.fhir.models import to_json

NOW = datetime(2024, 5, 14, 15, 30, tzinfo=UTC)


def codes(concepts: list[dict]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for cc in concepts for c in cc.get("coding", [])}


def test_care_plan_is_a_plan_for_the_program_with_references_not_inline_activities() -> None:
    plan = to_json(
        care.care_plan(
            patient="Patient/p1",
            program="CCM",
            start=date(2024, 5, 3),
            care_team="CareTeam/ct1",
            addresses=["Condition/dm2"],
            goals=["Goal/g1"],
            activities=["Task/t1", "CommunicationRequest/cr1"],
            author="Practitioner/cm1",
        )
    )
    assert plan["intent"] == "plan"
    assert plan["status"] == "active"
    assert (t.CARE_PROGRAM_SYSTEM, "CCM") in codes(plan["category"])
    assert plan["period"] == {"start": "2024-05-03"}
    assert plan["addresses"] == [{"reference": "Condition/dm2"}]
    assert plan["goal"] == [{"reference": "Goal/g1"}]
    assert plan["careTeam"] == [{"reference": "CareTeam/ct1"}]
    assert [a["reference"]["reference"] for a in plan["activity"]] == [
        "Task/t1",
        "CommunicationRequest/cr1",
    ]
    assert all("detail" not in a for a in plan["activity"])
    assert plan["identifier"] == [
        {"use": "official", "system": identifier_system("care-plan"), "value": "p1:CCM:2024-05-03"}
    ]


def test_care_plan_r5_uses_planned_activity_reference_and_codeable_references() -> None:
    plan = to_json(
        care.care_plan(
            patient="Patient/p1",
            program="RPM",
            start=date(2024, 5, 3),
            addresses=["Condition/c"],
            activities=["Task/t1"],
            version="R5",
        )
    )
    assert plan["activity"] == [{"plannedActivityReference": {"reference": "Task/t1"}}]
    assert plan["addresses"] == [{"reference": {"reference": "Condition/c"}}]


def test_care_plan_rejects_unknown_program_and_wrong_reference_types() -> None:
    with pytest.raises(ValueError, match="unknown program"):
        care.care_plan(patient="Patient/p1", program="XYZ", start=date(2024, 5, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Condition"):
        care.care_plan(
            patient="Patient/p1", program="CCM", start=date(2024, 5, 1), addresses=["Goal/g"]
        )
    with pytest.raises(ValueError, match="Patient"):
        care.care_plan(patient="Practitioner/x", program="CCM", start=date(2024, 5, 1))
    with pytest.raises(ValueError, match="reference"):
        care.care_plan(patient="p1", program="CCM", start=date(2024, 5, 1))


def test_care_team_has_care_coordinator_and_provider() -> None:
    team = to_json(
        care.care_team(
            patient="Patient/p1",
            program="CCM",
            start=date(2024, 5, 3),
            care_manager="Practitioner/cm1",
            provider="Practitioner/dr1",
        )
    )
    roles = {p["member"]["reference"]: codes(p["role"]) for p in team["participant"]}
    assert roles["Practitioner/cm1"] == {(t.SNOMED, "768820003")}
    assert roles["Practitioner/dr1"] == {(t.SNOMED, "446050000")}
    assert team["subject"] == {"reference": "Patient/p1"}


def test_outreach_request_covers_the_calendar_month() -> None:
    req = to_json(
        care.outreach_request(
            patient="Patient/p1",
            program="CCM",
            month=date(2024, 2, 14),
            care_manager="Practitioner/cm1",
            care_plan="CarePlan/cp1",
            channel="phone",
        )
    )
    assert req["status"] == "active"
    assert req["occurrencePeriod"] == {"start": "2024-02-01", "end": "2024-02-29"}
    assert (t.PARTICIPATION_MODE_SYSTEM, "PHONE") in codes(req["medium"])
    assert req["recipient"] == [{"reference": "Patient/p1"}]
    assert req["requester"] == {"reference": "Practitioner/cm1"}
    assert req["basedOn"] == [{"reference": "CarePlan/cp1"}]
    assert req["identifier"][0]["value"] == "p1:CCM:2024-02"


def test_outreach_request_same_month_same_identifier_december_rolls_over() -> None:
    a = care.outreach_request(
        patient="Patient/p1", program="CCM", month=date(2024, 12, 1), care_manager="Practitioner/c"
    )
    b = care.outreach_request(
        patient="Patient/p1", program="CCM", month=date(2024, 12, 31), care_manager="Practitioner/c"
    )
    assert a.identifier == b.identifier
    assert to_json(a)["occurrencePeriod"] == {"start": "2024-12-01", "end": "2024-12-31"}


@pytest.mark.parametrize(
    ("outcome", "status", "reason"),
    [
        ("answered", "completed", None),
        ("no-answer", "not-done", "recipient-unavailable"),
        ("voicemail", "not-done", "recipient-unavailable"),
        ("wrong-number", "not-done", "invalid-phone-number"),
        ("declined", "not-done", "patient-objection"),
    ],
)
def test_outreach_attempt_status_and_not_done_reason(
    outcome: care.Outcome, status: str, reason: str | None
) -> None:
    comm = to_json(
        care.outreach_attempt(
            key="evt-1",
            patient="Patient/p1",
            outreach="CommunicationRequest/cr1",
            channel="phone",
            outcome=outcome,
            attempted_at=NOW,
            by="Practitioner/cm1",
        )
    )
    assert comm["status"] == status
    assert comm["basedOn"] == [{"reference": "CommunicationRequest/cr1"}]
    if reason is None:
        assert "statusReason" not in comm
    else:
        assert comm["statusReason"]["coding"][0] == {
            "system": t.COMMUNICATION_NOT_DONE_REASON_SYSTEM,
            "code": reason,
            "display": comm["statusReason"]["coding"][0]["display"],
        }


def test_escalation_task_is_urgent_order_focused_on_the_request() -> None:
    task = to_json(
        care.escalation_task(
            patient="Patient/p1",
            outreach="CommunicationRequest/cr1",
            owner="Practitioner/lead",
            care_plan="CarePlan/cp1",
            authored_on=NOW,
        )
    )
    assert (task["intent"], task["priority"], task["status"]) == ("order", "urgent", "requested")
    assert task["focus"] == {"reference": "CommunicationRequest/cr1"}
    assert task["basedOn"] == [{"reference": "CarePlan/cp1"}]
    assert task["owner"] == {"reference": "Practitioner/lead"}
    assert task["for"] == {"reference": "Patient/p1"}
    again = care.escalation_task(
        patient="Patient/p1", outreach="CommunicationRequest/cr1", owner="Practitioner/other"
    )
    assert to_json(again)["identifier"] == task["identifier"]


def test_work_task_due_date_and_business_status() -> None:
    task = to_json(
        care.work_task(
            key="evt-9",
            patient="Patient/p1",
            work="medication-reconciliation",
            owner="Practitioner/cm1",
            due=date(2024, 6, 1),
            business_status="awaiting-pharmacy-list",
        )
    )
    assert task["status"] == "ready"
    assert task["restriction"]["period"] == {"end": "2024-06-01"}
    assert task["businessStatus"]["text"] == "awaiting-pharmacy-list"
    assert (t.TASK_TYPE_SYSTEM, "medication-reconciliation") in codes([task["code"]])


def test_work_task_rejects_unknown_status() -> None:
    from carecoord.errors import InvalidTransition

    with pytest.raises(InvalidTransition, match="unknown Task status"):
        care.work_task(
            key="k", patient="Patient/p1", work="assessment", owner="Practitioner/c", status="done"
        )


@pytest.mark.parametrize(("urgent", "priority"), [(True, "stat"), (False, "routine")])
def test_clinical_review_task_carries_question_only_in_input(urgent: bool, priority: str) -> None:
    question = "Should the furosemide dose change?"
    task = to_json(
        care.clinical_review_task(
            key="evt-3",
            patient="Patient/p1",
            provider="Practitioner/dr1",
            question=question,
            urgent=urgent,
            raised_by="Practitioner/cm1",
        )
    )
    assert task["priority"] == priority
    assert task["owner"] == {"reference": "Practitioner/dr1"}
    assert task["input"][0]["valueString"] == question
    without_input = {k: v for k, v in task.items() if k != "input"}
    assert question not in str(without_input)


def test_charge_item_per_code_and_unit_so_minutes_are_not_billed_twice() -> None:
    first = to_json(
        care.charge_item(patient="Patient/p1", program="CCM", month=date(2024, 5, 20), cpt="99439")
    )
    second = to_json(
        care.charge_item(
            patient="Patient/p1", program="CCM", month=date(2024, 5, 20), cpt="99439", unit=2
        )
    )
    assert first["code"]["coding"][0] == {
        "system": t.CPT,
        "code": "99439",
        "display": t.CPT_CCM_EACH_ADDL_20.display,
    }
    assert first["status"] == "billable"
    assert first["occurrencePeriod"] == {"start": "2024-05-01", "end": "2024-05-31"}
    assert first["identifier"] != second["identifier"]
    with pytest.raises(ValueError, match="CPT"):
        care.charge_item(patient="Patient/p1", program="CCM", month=date(2024, 5, 1), cpt="12345")


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone"):
        care.outreach_attempt(
            key="e",
            patient="Patient/p1",
            outreach="CommunicationRequest/c",
            channel="sms",
            outcome="answered",
            attempted_at=datetime(2024, 5, 1, 10, 0),
            by="Practitioner/c",
        )
