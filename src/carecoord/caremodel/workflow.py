"""The FHIR Task state machine, enforced (fhir.resources checks no code values).

`transition(task, new_status, reason=..., actor=...)` returns a new Task or raises
InvalidTransition naming from/to and the task id. Rules:
- FHIR workflow: draft -> requested/ready; requested -> received/accepted/rejected/ready;
  received -> accepted/rejected; accepted -> ready/in-progress/on-hold;
  ready -> in-progress/on-hold; in-progress -> completed/failed/on-hold;
  on-hold -> in-progress/failed. Any open status may be cancelled; any status may become
  entered-in-error. rejected, cancelled, completed and failed are final.
- statusReason.text is required for rejected, cancelled, on-hold and failed.
- Gravity SDOH referral roles (when `actor` is given), per the IG's status table: the requester
  sets draft, requested and entered-in-error; the owner (recipient) sets accepted, rejected,
  in-progress, on-hold, completed and failed; either may cancel. received and ready are not
  referral Task statuses (SDOHCCValueSetReferralTaskStatus) and are refused.
- Asking for the status a task already has is a no-op (a redelivered event is harmless).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fhir.resources.R4B.task import Task

from carecoord.core.vocabulary import TASK_STATUSES, TaskStatus
from carecoord.errors import InvalidTransition
from carecoord.fhir.models import revised

Actor = Literal["requester", "owner"]

TASK_INTENTS: frozenset[str] = frozenset(
    {
        "unknown", "proposal", "plan", "order", "original-order", "reflex-order",
        "filler-order", "instance-order", "option",
    }
)  # fmt: skip
TASK_PRIORITIES: frozenset[str] = frozenset({"routine", "urgent", "asap", "stat"})

FINAL: frozenset[str] = frozenset(
    {"rejected", "cancelled", "completed", "failed", "entered-in-error"}
)
# Work somebody still has to do: neither final nor a draft not yet requested. A tuple in the
# state machine's order, since it goes into `status=` search parameters as given.
OPEN: tuple[str, ...] = ("requested", "received", "accepted", "ready", "in-progress", "on-hold")

ALLOWED: dict[str, frozenset[str]] = {
    "draft": frozenset({"requested", "ready", "cancelled"}),
    "requested": frozenset({"received", "accepted", "rejected", "ready", "cancelled"}),
    "received": frozenset({"accepted", "rejected", "cancelled"}),
    "accepted": frozenset({"ready", "in-progress", "on-hold", "cancelled"}),
    "ready": frozenset({"in-progress", "on-hold", "cancelled"}),
    "in-progress": frozenset({"completed", "failed", "on-hold", "cancelled"}),
    "on-hold": frozenset({"in-progress", "failed", "cancelled"}),
    "rejected": frozenset(),
    "cancelled": frozenset(),
    "completed": frozenset(),
    "failed": frozenset(),
    "entered-in-error": frozenset(),
}

REASON_REQUIRED: frozenset[str] = frozenset({"rejected", "cancelled", "on-hold", "failed"})

# Who may set each status in a Gravity referral (Task with code fulfill between organisations):
# the "Set By" column of the status table in HL7/fhir-sdoh-clinicalcare @6604b7a (STU 3; the
# table is unchanged from 2.3) input/pagecontent/
# StructureDefinition-SDOHCC-TaskForReferralManagement-intro.md. cancelled is set by the
# "Requester or Referral Target": who it was, when an event does not say, is decided by the
# referrals handler (carecoord.handlers.referrals.handler.canceller). received and
# ready are outside SDOHCCValueSetReferralTaskStatus (input/fsh/valuesets/
# SDOHCCValueSetReferralTaskStatus.fsh: TaskStatus minus ready and received): nobody sets them.
SET_BY: dict[str, frozenset[Actor]] = {
    "draft": frozenset({"requester"}),
    "requested": frozenset({"requester"}),
    "cancelled": frozenset({"requester", "owner"}),
    "received": frozenset(),
    "accepted": frozenset({"owner"}),
    "rejected": frozenset({"owner"}),
    "in-progress": frozenset({"owner"}),
    "on-hold": frozenset({"owner"}),
    "completed": frozenset({"owner"}),
    "failed": frozenset({"owner"}),
    "ready": frozenset(),
    "entered-in-error": frozenset({"requester"}),
}
# The statuses a referral Task may have (SDOHCCValueSetReferralTaskStatus).
REFERRAL_TASK_STATUSES: frozenset[str] = frozenset(s for s, who in SET_BY.items() if who)


def check_task_status(status: str, *, task_id: str | None = None) -> TaskStatus:
    """`status` if it is a FHIR Task status code, else InvalidTransition."""
    if status not in TASK_STATUSES:
        raise InvalidTransition(f"unknown Task status {status!r}", task=task_id)
    return status  # narrowed to TaskStatus by the membership test


def validate_task_codes(task: Any) -> None:
    """Check Task.status, intent and priority are codes FHIR defines (InvalidTransition if not)."""
    tid = _task_ref(task)
    check_task_status(str(task.status), task_id=tid)
    if task.intent not in TASK_INTENTS:
        raise InvalidTransition(f"unknown Task intent {task.intent!r}", task=tid)
    if task.priority is not None and task.priority not in TASK_PRIORITIES:
        raise InvalidTransition(f"unknown Task priority {task.priority!r}", task=tid)


def allowed_transitions(status: str) -> frozenset[str]:
    """Statuses reachable from `status` in one step (entered-in-error always is)."""
    check_task_status(status)
    if status == "entered-in-error":
        return frozenset()
    return ALLOWED[status] | {"entered-in-error"}


def can_transition(current: str, new: str, *, actor: Actor | None = None) -> bool:
    try:
        _check(current, new, reason="x", actor=actor, task_id=None)
    except InvalidTransition:
        return False
    return True


def transition(
    task: Task,
    new_status: str,
    *,
    reason: str | None = None,
    actor: Actor | None = None,
    at: datetime | None = None,
) -> Task:
    """A copy of `task` with status `new_status` (statusReason.text = `reason` when given;
    lastModified = `at` when given), or InvalidTransition.

    `actor` applies the Gravity referral roles; leave it None for carecoord's own work tasks.
    """
    tid = _task_ref(task)
    current = check_task_status(str(task.status), task_id=tid)
    new = check_task_status(new_status, task_id=tid)
    if current == new:
        return task.model_copy(deep=True)
    _check(current, new, reason=reason, actor=actor, task_id=tid)
    data: dict[str, Any] = task.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["status"] = new
    if reason and reason.strip():
        text = {"text": reason.strip()}
        # R4 statusReason is a CodeableConcept; R5 made it a CodeableReference.
        data["statusReason"] = text if _is_r4(task) else {"concept": text}
    else:
        data.pop("statusReason", None)
    if at is not None:
        if at.tzinfo is None:
            raise ValueError("`at` must be timezone-aware")
        data["lastModified"] = at.isoformat()
    return revised(task, data)


# The referral Task state diagram adds "Accepted -> Completed or Failed" to the FHIR table
# (HL7/fhir-sdoh-clinicalcare @6604b7a "Images Source/ReferralTaskStateDiagram.drawio", the
# figure of StructureDefinition-SDOHCC-TaskForReferralManagement-intro.md; unchanged from 2.3);
# it applies when `actor` is given (a Gravity referral).
REFERRAL_EXTRA: dict[str, frozenset[str]] = {"accepted": frozenset({"completed", "failed"})}


def _check(
    current: str, new: str, *, reason: str | None, actor: Actor | None, task_id: str | None
) -> None:
    check_task_status(new, task_id=task_id)
    extra = REFERRAL_EXTRA.get(current, frozenset()) if actor is not None else frozenset()
    if new not in allowed_transitions(current) | extra:
        why = (
            "it is final" if current in FINAL else f"allowed: {', '.join(sorted(ALLOWED[current]))}"
        )
        raise InvalidTransition(
            f"Task cannot go from {current} to {new} ({why})", task=task_id, to=new
        )
    if new in REASON_REQUIRED and not (reason and reason.strip()):
        raise InvalidTransition(
            f"Task status {new} needs a reason (statusReason.text)", task=task_id, to=new
        )
    if actor is not None and not SET_BY[new]:
        raise InvalidTransition(
            f"a referral Task cannot be {new}: not in the SDOHCC referral Task status value set",
            task=task_id,
            to=new,
        )
    if actor is not None and actor not in SET_BY[new]:
        who = " or ".join(sorted(SET_BY[new]))
        raise InvalidTransition(
            f"only the {who} may set a referral Task to {new}, not the {actor}",
            task=task_id,
            to=new,
        )


def _is_r4(task: Any) -> bool:
    module: str = task.__class__.__module__  # a LazyResource answers its model's class
    return module.startswith("fhir.resources.R4B")


def _task_ref(task: Any) -> str:
    return f"Task/{task.id}" if getattr(task, "id", None) else "Task/(new)"
