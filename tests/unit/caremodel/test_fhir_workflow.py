"""The Task state machine: FHIR workflow transitions, reasons, Gravity referral roles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.task import Task
from hypothesis import given
from hypothesis import strategies as st

from carecoord.caremodel import workflow
from carecoord.caremodel.workflow import (
    TASK_STATUSES,
    can_transition,
    transition,
    validate_task_codes,
)
from carecoord.errors import InvalidTransition


def task(status: str = "ready", version: str = "R4") -> Task:
    data = {"resourceType": "Task", "id": "t1", "status": status, "intent": "order"}
    if version == "R4":
        return Task.model_validate(data)
    import fhir.resources.task as r5task

    return r5task.Task.model_validate(data)  # type: ignore[return-value]


HAPPY_PATH = ["draft", "requested", "accepted", "in-progress", "completed"]


def test_happy_path_of_a_referral() -> None:
    t = task("draft")
    actors = {"requested": "requester"}
    for status in HAPPY_PATH[1:]:
        t = transition(t, status, actor=actors.get(status, "owner"))  # type: ignore[arg-type]
        assert t.status == status


def test_work_task_lifecycle_with_hold() -> None:
    t = transition(task("ready"), "in-progress")
    t = transition(t, "on-hold", reason="waiting for pharmacy list")
    assert t.statusReason is not None and t.statusReason.text == "waiting for pharmacy list"
    t = transition(t, "in-progress")
    assert t.statusReason is None
    assert transition(t, "completed").status == "completed"


def test_returns_a_new_task_and_leaves_the_original() -> None:
    original = task("ready")
    moved = transition(original, "in-progress", at=datetime(2024, 5, 1, tzinfo=UTC))
    assert original.status == "ready"
    assert moved.status == "in-progress"
    assert moved.lastModified is not None


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("draft", "completed"),
        ("ready", "completed"),
        ("requested", "in-progress"),
        ("completed", "in-progress"),
        ("cancelled", "requested"),
        ("failed", "in-progress"),
        ("rejected", "accepted"),
        ("entered-in-error", "ready"),
    ],
)
def test_forbidden_transitions_name_from_to_and_task(current: str, new: str) -> None:
    with pytest.raises(InvalidTransition) as err:
        transition(task(current), new, reason="because")
    message = str(err.value)
    assert current in message and new in message and "Task/t1" in message


@pytest.mark.parametrize("status", ["rejected", "cancelled", "on-hold", "failed"])
def test_reason_required(status: str) -> None:
    start = {"rejected": "requested", "cancelled": "ready", "on-hold": "in-progress"}
    current = start.get(status, "in-progress")
    with pytest.raises(InvalidTransition, match="reason"):
        transition(task(current), status)
    with pytest.raises(InvalidTransition, match="reason"):
        transition(task(current), status, reason="   ")
    assert transition(task(current), status, reason="no capacity").status == status


def test_gravity_roles() -> None:
    # The IG's status table (SDOHCC-TaskForReferralManagement-intro.md, "Set By"), written out
    # here, not read from the code: cancelled by either side, entered-in-error by the requester,
    # received and ready by nobody (outside SDOHCCValueSetReferralTaskStatus).
    with pytest.raises(InvalidTransition, match="owner"):
        transition(task("requested"), "accepted", actor="requester")
    assert (
        transition(task("requested"), "cancelled", reason="no capacity", actor="owner").status
        == "cancelled"
    )
    with pytest.raises(InvalidTransition, match="requester"):
        transition(task("accepted"), "entered-in-error", actor="owner")
    for status in ("received", "ready"):
        for actor in ("requester", "owner"):
            with pytest.raises(InvalidTransition, match="value set"):
                transition(task("requested"), status, actor=actor)  # type: ignore[arg-type]
    assert transition(task("requested"), "accepted", actor="owner").status == "accepted"
    assert (
        transition(task("accepted"), "cancelled", reason="moved", actor="requester").status
        == "cancelled"
    )


def test_entered_in_error_from_anywhere_and_same_status_is_a_noop() -> None:
    for status in TASK_STATUSES - {"entered-in-error"}:
        assert transition(task(status), "entered-in-error").status == "entered-in-error"
    same = transition(task("in-progress"), "in-progress")
    assert same.status == "in-progress"


def test_unknown_status_codes_are_rejected() -> None:
    with pytest.raises(InvalidTransition, match="unknown Task status"):
        transition(task("ready"), "done")
    with pytest.raises(InvalidTransition, match="unknown Task status"):
        transition(task("finished"), "completed")
    with pytest.raises(InvalidTransition, match="intent"):
        validate_task_codes(Task.model_validate({"status": "ready", "intent": "whenever"}))
    with pytest.raises(InvalidTransition, match="priority"):
        validate_task_codes(
            Task.model_validate({"status": "ready", "intent": "order", "priority": "high"})
        )
    validate_task_codes(task("ready"))


def test_r5_status_reason_is_a_codeable_reference() -> None:
    t = transition(task("in-progress", "R5"), "failed", reason="patient unreachable")
    assert t.statusReason.concept.text == "patient unreachable"  # type: ignore[attr-defined]


@given(st.sampled_from(sorted(TASK_STATUSES)), st.sampled_from(sorted(TASK_STATUSES)))
def test_transition_agrees_with_the_table(current: str, new: str) -> None:
    allowed = current == new or new in workflow.allowed_transitions(current)
    assert can_transition(current, new) == (new in workflow.allowed_transitions(current))
    if allowed:
        assert transition(task(current), new, reason="r").status == new
    else:
        with pytest.raises(InvalidTransition):
            transition(task(current), new, reason="r")
    if current in workflow.FINAL and current != new:
        assert new == "entered-in-error" or not allowed
