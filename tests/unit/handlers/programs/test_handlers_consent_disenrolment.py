"""Consent (pending enrolment, the obtain-consent Task, carecoord.consent.recorded) and
disenrolment (CarePlan ends, outreach revoked, Tasks cancelled, the sweeper stops; declined calls
and unreachable months create Tasks)."""

from __future__ import annotations

from datetime import UTC, datetime

from carecoord.core.envelope import new_event
from carecoord.handlers.jobs import sweeper
from carecoord.handlers.programs import care_tasks, consent, disenrolment, enrolment, outreach
from support.care_management import Runner, attempted, enrolled

SPECS = [
    *enrolment.HANDLERS,
    *outreach.HANDLERS,
    *care_tasks.HANDLERS,
    *consent.HANDLERS,
    *disenrolment.HANDLERS,
]


def recorded(patient: str, date: str = "2024-05-10") -> object:
    return new_event(
        "carecoord.consent.recorded",
        patient,
        {"program": "CCM", "date": date, "method": "written", "recorded_by": "Practitioner/cm1"},
        id=f"consent-{patient}",
    )


def test_enrolment_without_consent_is_pending_with_an_obtain_consent_task() -> None:
    run = Runner(SPECS)
    run.run(enrolled("p1", care_manager="Practitioner/cm1", consent=None))
    [plan] = run.fhir.all("CarePlan")
    assert plan["status"] == "draft"
    [task] = run.fhir.tasks("obtain-consent")
    assert task["owner"]["reference"] == "Practitioner/cm1"
    assert task["restriction"]["period"]["end"] == "2024-05-17"
    assert run.fhir.all("Consent") == []
    run.run(recorded("p1"))  # type: ignore[arg-type]
    [plan] = run.fhir.all("CarePlan")
    assert plan["status"] == "active"
    [task] = run.fhir.tasks("obtain-consent")
    assert task["status"] == "completed"
    [written] = run.fhir.all("Consent")
    assert written["status"] == "active" and written["dateTime"].startswith("2024-05-10")
    assert {e["valueCode"] for e in written["extension"] if "valueCode" in e} == {"written"}
    run.run(recorded("p1"))  # type: ignore[arg-type]  # replay: nothing new
    assert len(run.fhir.all("Consent")) == 1


def test_enrolment_with_consent_writes_the_consent_and_an_active_plan() -> None:
    run = Runner(SPECS)
    run.run(enrolled("p1", care_manager="Practitioner/cm1"))
    [plan] = run.fhir.all("CarePlan")
    assert plan["status"] == "active"
    assert len(run.fhir.all("Consent")) == 1
    assert run.fhir.tasks("obtain-consent") == []


def _disenrolled(patient: str, **data: object) -> object:
    body = {"program": "CCM", "reason": "patient-request", **data}
    return new_event("carecoord.patient.disenrolled", patient, body, id=f"dis-{patient}")


def test_disenrolment_mid_month_ends_everything_at_month_end_by_default() -> None:
    run = Runner(SPECS)
    run.run(enrolled("p1", care_manager="Practitioner/cm1"))
    event = _disenrolled("p1")
    event = event.model_copy(update={"time": datetime(2024, 5, 14, 9, tzinfo=UTC)})  # type: ignore[attr-defined]
    run.run(event)
    [plan] = run.fhir.all("CarePlan")
    assert plan["status"] == "revoked" and plan["period"]["end"] == "2024-05-31"
    [written] = run.fhir.all("Consent")
    assert written["status"] == "inactive"
    assert written["provision"]["period"]["end"] == "2024-05-31"
    assert {cr["status"] for cr in run.fhir.all("CommunicationRequest")} == {"revoked"}
    open_tasks = [t for t in run.fhir.all("Task") if t["status"] not in ("cancelled", "completed")]
    assert open_tasks == []
    # The sweeper creates nothing more next month.
    events = sweeper.sweep(run.fhir, datetime(2024, 6, 2, 8, tzinfo=UTC), {})
    assert [e for e in events if e.type == "carecoord.outreach.due"] == []


def test_disenrolment_with_a_date_uses_it() -> None:
    run = Runner(SPECS)
    run.run(enrolled("p1", care_manager="Practitioner/cm1"))
    run.run(_disenrolled("p1", reason="deceased", effective_date="2024-05-12"))
    [plan] = run.fhir.all("CarePlan")
    assert plan["period"]["end"] == "2024-05-12"


def test_a_declined_call_asks_the_care_manager_to_confirm_disenrolment() -> None:
    run = Runner(SPECS)
    run.run(enrolled("p1", care_manager="Practitioner/cm1"))
    run.run(attempted("p1", 1, "declined"))
    [task] = run.fhir.tasks("confirm-disenrolment")
    assert task["owner"]["reference"] == "Practitioner/cm1"
    [plan] = run.fhir.all("CarePlan")
    assert plan["status"] == "active"  # not ended until the disenrolment is confirmed


def test_unreachable_for_three_months_gets_a_review_task() -> None:
    run = Runner(SPECS)
    run.run(enrolled("p1", care_manager="Practitioner/cm1", start="2024-02-01"))
    for month in ("2024-03", "2024-04"):
        due = new_event(
            "carecoord.outreach.due",
            "p1",
            {"period_start": f"{month}-01", "period_end": f"{month}-28", "stage": "due"},
            id=f"due-{month}",
        )
        run.run(due)
    assert run.fhir.tasks("unreachable-review") == []  # only Feb and Mar unanswered
    run.run(
        new_event(
            "carecoord.outreach.due",
            "p1",
            {"period_start": "2024-05-01", "period_end": "2024-05-31", "stage": "due"},
            id="due-2024-05",
        )
    )  # Feb, Mar, Apr never answered
    [task] = run.fhir.tasks("unreachable-review")
    assert task["owner"]["reference"] == "Practitioner/cm1"
