"""What the Task state machine says when it refuses, and the details of a transition's result
(found by mutation testing: these were unchecked)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from fhir.resources.R4B.task import Task

from carecoord.caremodel.workflow import (
    allowed_transitions,
    can_transition,
    check_task_status,
    transition,
    validate_task_codes,
)
from carecoord.errors import InvalidTransition


def _task(status: str = "ready", tid: str | None = "t1", **extra: object) -> Task:
    data: dict[str, object] = {"resourceType": "Task", "status": status, "intent": "order", **extra}
    if tid is not None:
        data["id"] = tid
    return Task.model_validate(data)


def _refusal(fn: object, *args: object, **kwargs: object) -> InvalidTransition:
    with pytest.raises(InvalidTransition) as err:
        fn(*args, **kwargs)  # type: ignore[operator]
    return err.value


def test_unknown_codes_name_the_code_and_the_task() -> None:
    e = _refusal(validate_task_codes, _task(intent="whenever"))
    assert (e.message, e.context) == ("unknown Task intent 'whenever'", {"task": "Task/t1"})
    e = _refusal(validate_task_codes, _task(priority="high"))
    assert (e.message, e.context) == ("unknown Task priority 'high'", {"task": "Task/t1"})
    e = _refusal(validate_task_codes, _task("finished"))
    assert (e.message, e.context) == ("unknown Task status 'finished'", {"task": "Task/t1"})
    e = _refusal(validate_task_codes, _task("finished", tid=None))
    assert e.context == {"task": "Task/(new)"}
    e = _refusal(check_task_status, "done", task_id="Task/x")
    assert (e.message, e.context) == ("unknown Task status 'done'", {"task": "Task/x"})
    for priority in ("routine", "urgent", "asap", "stat"):
        validate_task_codes(_task(priority=priority))
    for intent in ("unknown", "proposal", "plan", "original-order", "filler-order", "option"):
        validate_task_codes(_task(intent=intent))
    assert check_task_status("on-hold") == "on-hold"


def test_a_forbidden_transition_says_what_is_allowed_or_that_the_status_is_final() -> None:
    e = _refusal(transition, _task("ready"), "completed", reason="r")
    assert (
        e.message
        == "Task cannot go from ready to completed (allowed: cancelled, in-progress, on-hold)"
    )
    assert e.context == {"task": "Task/t1", "to": "completed"}
    e = _refusal(transition, _task("completed"), "ready")
    assert e.message == "Task cannot go from completed to ready (it is final)"
    e = _refusal(transition, _task("entered-in-error"), "ready")
    assert e.message == "Task cannot go from entered-in-error to ready (it is final)"


def test_a_missing_reason_and_a_wrong_actor_are_explained() -> None:
    e = _refusal(transition, _task("in-progress"), "failed")
    assert e.message == "Task status failed needs a reason (statusReason.text)"
    assert e.context == {"task": "Task/t1", "to": "failed"}
    e = _refusal(transition, _task("requested"), "accepted", actor="requester")
    assert e.message == "only the owner may set a referral Task to accepted, not the requester"
    assert e.context == {"task": "Task/t1", "to": "accepted"}
    e = _refusal(transition, _task("accepted"), "entered-in-error", actor="owner")
    assert e.message == (
        "only the requester may set a referral Task to entered-in-error, not the owner"
    )
    e = _refusal(transition, _task("accepted"), "ready", actor="requester")
    assert e.message == (
        "a referral Task cannot be ready: not in the SDOHCC referral Task status value set"
    )
    assert (
        transition(_task("accepted"), "cancelled", reason="moved", actor="owner").status
        == "cancelled"
    )
    assert (
        transition(_task("ready"), "entered-in-error", actor="requester").status
        == "entered-in-error"
    )
    assert can_transition("requested", "accepted", actor="owner")
    assert not can_transition("requested", "accepted", actor="requester")
    assert can_transition("in-progress", "failed")  # can_transition assumes a reason is given


def test_allowed_transitions_always_include_entered_in_error_except_from_it() -> None:
    assert allowed_transitions("draft") == {"requested", "ready", "cancelled", "entered-in-error"}
    assert allowed_transitions("completed") == {"entered-in-error"}
    assert allowed_transitions("entered-in-error") == frozenset()
    with pytest.raises(InvalidTransition, match="unknown Task status 'done'"):
        allowed_transitions("done")


def test_the_result_carries_reason_and_time_and_drops_a_stale_reason() -> None:
    at = datetime(2025, 3, 31, 21, 0, tzinfo=timezone(timedelta(hours=-5)))
    held = transition(_task("in-progress"), "on-hold", reason="  waiting  ", at=at)
    assert held.statusReason is not None and held.statusReason.text == "waiting"
    assert held.lastModified is not None and held.lastModified.isoformat() == at.isoformat()
    resumed = transition(held, "in-progress", reason="   ")
    assert resumed.statusReason is None
    assert resumed.lastModified == held.lastModified  # no `at`: left as it was
    assert transition(held, "in-progress", reason="back").statusReason.text == "back"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"^`at` must be timezone-aware$"):
        transition(_task("ready"), "in-progress", at=datetime(2025, 1, 1))
    same = transition(held, "on-hold")
    assert same is not held and same == held
    assert transition(_task("ready"), "in-progress", at=datetime(2025, 1, 1, tzinfo=UTC)).id == "t1"


def test_transition_names_the_task_for_unknown_statuses_and_returns_a_deep_copy() -> None:
    e = _refusal(transition, _task("finished"), "ready")
    assert e.context == {"task": "Task/t1"}
    e = _refusal(transition, _task("ready"), "done")
    assert e.context == {"task": "Task/t1"}
    held = transition(_task("in-progress"), "on-hold", reason="waiting")
    same = transition(held, "on-hold")
    assert same.statusReason is not held.statusReason  # a deep copy: nothing shared
