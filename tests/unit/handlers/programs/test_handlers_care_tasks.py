"""Care-management Tasks: overdue -> one escalation to the supervisor."""

from __future__ import annotations

from carecoord.core.envelope import new_event
from carecoord.handlers.programs import care_tasks, enrolment, outreach
from support.care_management import Runner, enrolled

SPECS = [*enrolment.HANDLERS, *outreach.HANDLERS, *care_tasks.HANDLERS]


def _overdue(task_id: str, n: int = 0) -> object:
    return new_event(
        "carecoord.task.overdue", "p1", {"task": f"Task/{task_id}"}, id=f"overdue-{task_id}-{n}"
    )


def test_an_overdue_task_is_escalated_once_to_the_supervisor() -> None:
    run = Runner(SPECS, {"supervisor": "Practitioner/sup"})
    run.run(enrolled("p1", care_manager="Practitioner/cm1"))
    [med] = run.fhir.tasks("medication-reconciliation")
    run.run(_overdue(med["id"]))  # type: ignore[arg-type]
    run.run(_overdue(med["id"], 1))  # type: ignore[arg-type]  # the sweeper again
    [esc] = run.fhir.tasks("overdue-escalation")
    assert esc["owner"] == {"reference": "Practitioner/sup"}
    assert esc["priority"] == "urgent"
    assert esc["focus"] == {"reference": f"Task/{med['id']}"}
    assert esc["basedOn"] == med["basedOn"]
    tagged = run.fhir.store[("Task", med["id"])]
    assert tagged["status"] == "ready"  # the work item itself is untouched...
    assert [t["code"] for t in tagged["meta"]["tag"]] == ["overdue-escalated"]  # ...but marked


def test_a_finished_task_is_not_escalated() -> None:
    run = Runner(SPECS, {"supervisor": "Practitioner/sup"})
    run.run(enrolled("p1", care_manager="Practitioner/cm1"))
    [med] = run.fhir.tasks("medication-reconciliation")
    run.fhir.store[("Task", med["id"])]["status"] = "completed"
    assert run.run(_overdue(med["id"])).wrote is False  # type: ignore[arg-type]


def test_a_work_task_whose_due_date_is_partial_is_left_alone_not_a_crash() -> None:
    """A restriction.period.end of "2025-03" (R4 allows partial dates; another system wrote
    it) has no due day: the sweep must not fail on it (it raised ValueError before)."""
    from datetime import UTC, datetime

    from fhir.resources.R4B.task import Task

    task = Task.model_validate(
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "restriction": {"period": {"end": "2025-03"}},
        }
    )
    assert care_tasks.is_overdue(task, datetime(2025, 6, 1, tzinfo=UTC)) is False
    task.restriction.period.end = "2025-03-31"  # type: ignore[union-attr]
    assert care_tasks.is_overdue(task, datetime(2025, 6, 1, tzinfo=UTC)) is True
