"""Care-management Tasks: overdue -> one escalation to the supervisor."""

from __future__ import annotations

from care_management_support import Runner, enrolled

from carecoord.core.envelope import new_event
from carecoord.handlers import care_tasks, enrolment, outreach

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
    assert run.run(_overdue(med["id"])).writes == []  # type: ignore[arg-type]
