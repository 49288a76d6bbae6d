"""Care-management work items (medication reconciliation, assessment, monthly care-plan review)
per program, and the one escalation of an overdue one to the supervisor.

Handler "care-tasks": `carecoord.task.overdue` (emitted by `carecoord sweep` when a Task's
restriction.period.end has passed) -> one urgent Task to the supervisor (or pool) focused on the
overdue Task, and the overdue Task is tagged so the sweeper stops reporting it. The work items
themselves are created by the enrolment handler (enrolment_tasks) and by the monthly outreach-due
handler (monthly_tasks), in the same transaction as the CarePlan / monthly request they belong to.
Status changes of these Tasks go through carecoord.caremodel.workflow.transition.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fhir.resources.R4B.task import Task

from carecoord.caremodel import builders as care
from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import add_create
from carecoord.caremodel.workflow import FINAL
from carecoord.core.catalog import TaskOverdue
from carecoord.core.effects import Effects
from carecoord.core.handler import HandlerSpec
from carecoord.core.router import Delivery, Handlers
from carecoord.errors import ConfigError, HandlerError
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.models import to_json
from carecoord.handlers.care.model import (
    CareConfig,
    Month,
    as_date,
    build,
    reference_str,
    version_of,
)

log = logging.getLogger(__name__)

OVERDUE_TAG = t.BUSINESS_OVERDUE_ESCALATED  # meta.tag on a Task whose overdue was escalated
WORK_TASK_CODES = frozenset(t.WORK_TASK_TYPES)


def _work_code(name: str) -> t.Code:
    return t.code_named(t.WORK_TASK_TYPES, name, "care-management task type", ConfigError)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def enrolment_tasks(
    config: CareConfig,
    *,
    patient_id: str,
    program: str,
    start: date,
    owner: str,
    care_plan: str,
    requester: str | None,
) -> list[Task]:
    """The one-off work items of an enrolment (per program, config `enrolment_tasks`), due
    `task_due_days[type]` days after `start`."""
    tasks = []
    for name in config.enrolment_tasks.get(program, []):
        code = _work_code(name)
        tasks.append(
            care.work_task(
                key=f"{program}:{start.isoformat()}",
                patient=f"Patient/{patient_id}",
                work=code,
                owner=owner,
                due=start + timedelta(days=config.task_due_days.get(name, 14)),
                care_plan=care_plan,
                requester=requester,
                authored_on=_midnight(start),
            )
        )
    return tasks


def monthly_tasks(
    config: CareConfig,
    *,
    patient_id: str,
    program: str,
    month: Month,
    owner: str,
    care_plan: str,
    requester: str | None,
    authored: date,
) -> list[Task]:
    """The work items due every month (per program, config `monthly_tasks`, e.g. care-plan
    review), due on the last day of the month."""
    return [
        care.work_task(
            key=f"{program}:{month.label}",
            patient=f"Patient/{patient_id}",
            work=_work_code(name),
            owner=owner,
            due=month.end,
            care_plan=care_plan,
            requester=requester,
            authored_on=_midnight(max(authored, month.start)),
        )
        for name in config.monthly_tasks.get(program, [])
    ]


handlers = Handlers(
    "care-tasks",
    config=CareConfig,
    settings=(
        "supervisor",
        "pool",
    ),
    description="Escalates an overdue care-management Task once to the supervisor.",
)


@handlers.on(TaskOverdue)
def handle_task_overdue(d: Delivery[TaskOverdue, CareConfig]) -> Effects:
    task_ref = d.data.task
    if not task_ref.startswith("Task/"):
        raise HandlerError("task must be 'Task/<id>'", event_id=d.event.id, event_type=d.event.type)
    try:
        task: Any = d.fhir.read("Task", task_ref.removeprefix("Task/"))
    except (FhirNotFound, FhirGone):
        log.warning("overdue task no longer exists")
        return Effects()
    effects = Effects()
    if task.status in FINAL or _escalated(task):
        return effects
    owner = (
        d.config.supervisor
        or d.config.pool
        or reference_str(task.requester)
        or reference_str(task.owner)
    )
    if owner is None:
        raise ConfigError("no supervisor or pool configured to own overdue escalations")
    plans = [reference_str(b) for b in task.basedOn or []]
    plan = next((p for p in plans if p and p.startswith("CarePlan/")), None)
    at = d.aware_time()
    escalation = care.work_task(
        key=task_ref,
        patient=d.patient,
        work=t.TASK_OVERDUE_ESCALATION,
        owner=owner,
        due=at.date() + timedelta(days=1),
        care_plan=plan,
        requester=reference_str(task.owner),
        priority="urgent",
        authored_on=at,
    )
    escalation_json = to_json(escalation)
    escalation_json["focus"] = {"reference": task_ref}
    escalation_json["reasonCode"] = t.REASON_OVERDUE.concept_json()
    add_create(effects, build("Task", escalation_json))
    tagged = to_json(task)
    tagged.setdefault("meta", {}).setdefault("tag", []).append(OVERDUE_TAG.json())
    effects.update(build("Task", tagged), version_of(task))
    log.info("overdue task escalated", extra={"task": task_ref})
    return effects


def _escalated(task: Any) -> bool:
    meta = task.meta
    return any(OVERDUE_TAG.matches(tag) for tag in (meta.tag if meta and meta.tag else []))


def is_overdue(task: Any, now: datetime) -> bool:
    """Open work Task whose restriction.period.end has passed and was not escalated yet."""
    if task.status in FINAL or task.status == "draft" or _escalated(task):
        return False
    restriction = task.restriction
    end = restriction.period.end if restriction and restriction.period else None
    if end is None:
        return False
    if isinstance(end, datetime):
        due = end if end.tzinfo else end.replace(tzinfo=UTC)
    else:
        day = as_date(end)
        if day is None:  # a partial date ("2025-03") from another writer: no due day to act on
            return False
        due = _midnight(day + timedelta(days=1))
    return now >= due


HANDLERS: list[HandlerSpec] = [handlers.spec]
