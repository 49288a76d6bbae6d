"""Disenrolling a patient from one program ends that program only: the Tasks and outreach of
the patient's other plans (another program, a TCM episode, a referral) stay as they were."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from carecoord.core.envelope import new_event
from carecoord.handlers.jobs import sweeper
from carecoord.handlers.programs import care_tasks, consent, disenrolment, enrolment, outreach, tcm
from support.care_management import Runner, enrolled

SPECS = [
    *enrolment.HANDLERS,
    *outreach.HANDLERS,
    *care_tasks.HANDLERS,
    *consent.HANDLERS,
    *disenrolment.HANDLERS,
    *tcm.HANDLERS,
]
CM = "Practitioner/cm1"


def _two_programs_a_discharge_and_a_referral() -> Runner:
    run = Runner(SPECS)
    run.run(enrolled("p1", care_manager=CM, start="2024-05-03"))
    run.run(enrolled("p1", care_manager=CM, start="2024-05-04", program="BHI"))
    for event in sweeper.sweep(run.fhir, datetime(2024, 5, 6, 8, tzinfo=UTC), {}):
        run.run(event)  # both programs' monthly outreach
    run.run(
        new_event(
            "carecoord.patient.discharged",
            "p1",
            {
                "discharged_at": "2024-05-08T15:00:00+00:00",
                "facility": "General",
                "setting": "inpatient",
                "complexity": "high",
            },
            id="discharge-p1",
        )
    )
    run.fhir.put(
        {
            "resourceType": "ServiceRequest",
            "id": "ref1",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
        }
    )
    run.fhir.put(
        {
            "resourceType": "Task",
            "id": "referral-task",
            "status": "requested",
            "intent": "order",
            "for": {"reference": "Patient/p1"},
            "basedOn": [{"reference": "ServiceRequest/ref1"}],
            "owner": {"reference": CM},
        }
    )
    return run


def _status(run: Runner) -> dict[str, str]:
    return {task["id"]: task["status"] for task in run.fhir.all("Task")}


def _plan_of(run: Runner, program: str) -> dict[str, Any]:
    return next(
        p
        for p in run.fhir.all("CarePlan")
        if any(c.get("code") == program for cat in p.get("category", []) for c in cat["coding"])
    )


def test_disenrolling_from_ccm_leaves_bhi_tcm_and_referral_tasks_alone() -> None:
    run = _two_programs_a_discharge_and_a_referral()
    ccm, bhi = _plan_of(run, "CCM"), _plan_of(run, "BHI")
    before = _status(run)
    tasks = {task["id"]: task for task in run.fhir.all("Task")}

    def based_on(task: dict[str, Any]) -> set[str]:
        return {b["reference"] for b in task.get("basedOn", [])}

    ccm_only = {
        i
        for i, task in tasks.items()
        if f"CarePlan/{ccm['id']}" in based_on(task)
        and not task.get("focus", {}).get("reference", "").startswith("EpisodeOfCare/")
    }
    others = set(tasks) - ccm_only
    assert {i for i in others if f"CarePlan/{bhi['id']}" in based_on(tasks[i])}  # BHI has work
    assert {
        i
        for i in others
        if tasks[i].get("focus", {}).get("reference", "").startswith("EpisodeOfCare/")
    } and "referral-task" in others

    run.run(
        new_event(
            "carecoord.patient.disenrolled",
            "p1",
            {"program": "CCM", "reason": "patient-request"},
            id="dis-p1",
        )
    )

    after = _status(run)
    assert {i: after[i] for i in others} == {i: before[i] for i in others}
    assert all(after[i] == "cancelled" for i in ccm_only if before[i] not in ("completed",))
    assert _plan_of(run, "BHI")["status"] == "active"
    assert _plan_of(run, "CCM")["status"] == "revoked"
    requests = {
        cr["identifier"][0]["value"].split(":")[1]: cr["status"]
        for cr in run.fhir.all("CommunicationRequest")
    }
    assert requests == {"CCM": "revoked", "BHI": "active"}
    consents = {c["category"][1]["coding"][0]["code"]: c["status"] for c in run.fhir.all("Consent")}
    assert consents == {"CCM": "inactive", "BHI": "active"}
