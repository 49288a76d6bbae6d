"""The Task state machine checked against the FHIR R4 specification, written out here literally
(never read from caremodel.workflow, so a wrong table in the code cannot agree with itself).

Source: FHIR R4 Task, "Task state machine" (http://hl7.org/fhir/R4/task.html#statemachine): the
typical transitions of its diagram, plus the rules stated with it: any non-terminal task may be
cancelled, and any task may be marked entered-in-error. rejected, cancelled, failed, completed and
entered-in-error are terminal (the spec lets workflows add transitions out of them; carecoord
adds none). Every pair of the 12 x 12 statuses is checked, allowed or not.
"""

from __future__ import annotations

import itertools

import pytest
from fhir.resources.R4B.task import Task

from carecoord.caremodel.workflow import FINAL, can_transition, transition
from carecoord.errors import InvalidTransition

STATUSES = (
    "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
    "in-progress", "on-hold", "failed", "completed", "entered-in-error",
)  # fmt: skip

# The diagram's arrows (from -> to), cancelled and entered-in-error aside.
DIAGRAM = {
    ("draft", "requested"),
    ("draft", "ready"),
    ("requested", "received"),
    ("requested", "accepted"),
    ("requested", "rejected"),
    ("requested", "ready"),
    ("received", "accepted"),
    ("received", "rejected"),
    ("accepted", "ready"),
    ("accepted", "in-progress"),
    ("accepted", "on-hold"),
    ("ready", "in-progress"),
    ("ready", "on-hold"),
    ("in-progress", "completed"),
    ("in-progress", "failed"),
    ("in-progress", "on-hold"),
    ("on-hold", "in-progress"),
    ("on-hold", "failed"),
}
TERMINAL = {"rejected", "cancelled", "failed", "completed", "entered-in-error"}
CANCELLABLE = {"draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold"}
SPEC = (
    DIAGRAM
    | {(s, "cancelled") for s in CANCELLABLE}
    | {(s, "entered-in-error") for s in STATUSES if s != "entered-in-error"}
)


def _task(status: str) -> Task:
    return Task.model_validate(
        {"resourceType": "Task", "id": "t1", "status": status, "intent": "order"}
    )


def test_the_spec_table_is_well_formed() -> None:
    assert len(set(STATUSES)) == 12
    assert all(a in STATUSES and b in STATUSES and a != b for a, b in SPEC)
    assert not any(a in TERMINAL for a, _ in DIAGRAM | {(s, "cancelled") for s in CANCELLABLE})
    assert len(SPEC) == 18 + 7 + 11


@pytest.mark.parametrize(
    ("current", "new"), [(a, b) for a, b in itertools.product(STATUSES, STATUSES) if a != b]
)
def test_every_transition_is_allowed_exactly_when_the_spec_allows_it(
    current: str, new: str
) -> None:
    allowed = (current, new) in SPEC
    assert can_transition(current, new) is allowed
    if allowed:
        assert transition(_task(current), new, reason="per spec").status == new
    else:
        with pytest.raises(InvalidTransition):
            transition(_task(current), new, reason="per spec")


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("accepted", "completed"),  # must start first
        ("ready", "completed"),
        ("draft", "in-progress"),
        ("requested", "in-progress"),
        ("received", "in-progress"),
        ("ready", "failed"),
        ("completed", "in-progress"),
        ("failed", "in-progress"),
    ],
)
def test_shortcuts_the_spec_does_not_draw_are_refused(current: str, new: str) -> None:
    assert (current, new) not in SPEC
    assert not can_transition(current, new)


def test_the_final_statuses_are_the_specs_terminal_ones() -> None:
    # Every handler asks FINAL whether a Task needs more work (there is no second list).
    assert set(FINAL) == TERMINAL
    assert all(not can_transition(s, n) for s in FINAL for n in STATUSES if n != "entered-in-error")
