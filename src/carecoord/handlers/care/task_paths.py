"""Closing care-management Tasks through the FHIR workflow state machine (no shortcuts): a
ready Task is completed via in-progress, a requested one via ready and in-progress."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from carecoord.caremodel.workflow import FINAL, OPEN, transition
from carecoord.handlers.care.model import patient_of

_TO_COMPLETED: dict[str, tuple[str, ...]] = {
    "draft": ("ready", "in-progress", "completed"),
    "requested": ("ready", "in-progress", "completed"),
    "received": ("accepted", "in-progress", "completed"),
    "accepted": ("in-progress", "completed"),
    "ready": ("in-progress", "completed"),
    "on-hold": ("in-progress", "completed"),
    "in-progress": ("completed",),
}


def open_tasks_of(found: Iterable[Any], patient_id: str, *, drafts: bool = True) -> list[Any]:
    """The patient's Tasks among search results that are not final yet (re-filtered here);
    `drafts=False`: only those somebody has to work on (workflow.OPEN)."""
    return [
        task
        for task in found
        if task.get_resource_type() == "Task"
        and patient_of(task) == patient_id
        and (task.status not in FINAL if drafts else task.status in OPEN)
    ]


def complete(task: Any, *, reason: str, at: datetime) -> Any:
    """`task` moved to completed along the allowed path (unchanged if already final)."""
    for status in _TO_COMPLETED.get(task.status, ()):
        task = transition(task, status, reason=reason, at=at)
    return task


def cancel(task: Any, *, reason: str, at: datetime) -> Any:
    """`task` cancelled (every open status may be cancelled; statusReason is set)."""
    if task.status in FINAL:
        return task
    return transition(task, "cancelled", reason=reason, at=at)
