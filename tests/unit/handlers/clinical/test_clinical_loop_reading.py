"""What the clinical loop reads off a clinical-review Task (level, question, urgency, a visit
request, the answer), the escalation steps and targets, and the response deadline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from carecoord.caremodel import terminology as t
from carecoord.handlers.care.model import build
from carecoord.handlers.clinical.loop import (
    ClinicalLoopConfig,
    _answer,
    clinical_overdue,
    level_of,
    question_of,
    raised,
    response_due,
    urgency_of,
    visit_requested,
)
from carecoord.testing import InMemoryFhir


def review(
    tid: str = "q1",
    *,
    level: int | None = None,
    urgency: str | None = None,
    focus: str | None = None,
    **extra: Any,
) -> Any:
    inputs: list[dict[str, Any]] = []
    if level is not None:
        inputs.append({"type": t.TASK_INPUT_ESCALATION_LEVEL.concept_json(), "valueInteger": level})
    if urgency is not None:
        inputs.append({"type": t.TASK_INPUT_URGENCY.concept_json(), "valueCode": urgency})
    body: dict[str, Any] = {
        "id": tid,
        "status": "requested",
        "intent": "order",
        "code": t.TASK_CLINICAL_REVIEW.concept_json(),
        "for": {"reference": "Patient/p1"},
        **extra,
    }
    if inputs:
        body["input"] = inputs
    if focus is not None:
        body["focus"] = {"reference": focus}
    return build("Task", body)


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        ("routine", "urgent"),
        ("urgent", "asap"),
        ("asap", "stat"),
        ("stat", "stat"),
        (None, "urgent"),
        ("odd", "urgent"),
    ],
)
def test_an_escalation_raises_the_priority_one_step(priority: str | None, expected: str) -> None:
    assert raised(priority) == expected


def test_escalation_targets_by_level() -> None:
    both = ClinicalLoopConfig(
        covering_provider="Practitioner/cover",
        on_call="PractitionerRole/oncall",
        clinical_lead="Practitioner/lead",
    )
    assert both.escalation_target(1) == "Practitioner/cover"
    assert both.escalation_target(2) == "Practitioner/lead"
    on_call = ClinicalLoopConfig(on_call="PractitionerRole/oncall")
    assert on_call.escalation_target(1) == "PractitionerRole/oncall"
    assert on_call.escalation_target(2) is None


def test_level_and_question_of_a_task() -> None:
    question = review("q1")
    assert level_of(question) == 0 and question_of(question) == "Task/q1"
    escalation = review("e1", level=2, focus="Task/q1")
    assert level_of(escalation) == 2 and question_of(escalation) == "Task/q1"
    odd = review("e2", level=1, focus="ServiceRequest/x")
    assert question_of(odd) == "Task/e2"
    text_level = build(
        "Task",
        {
            **question.model_dump(mode="json"),
            "input": [{"type": t.TASK_INPUT_ESCALATION_LEVEL.concept_json(), "valueString": "1"}],
        },
    )
    assert level_of(text_level) == 0


def test_urgency_from_its_input_else_from_the_priority() -> None:
    assert urgency_of(review(urgency="urgent", priority="routine")) == "urgent"
    assert urgency_of(review(urgency="routine", priority="stat")) == "routine"
    assert urgency_of(review(urgency="odd", priority="stat")) == "urgent"
    assert urgency_of(review(priority="stat")) == "urgent"
    assert urgency_of(review(priority="asap")) == "routine"
    assert urgency_of(review()) == "routine"


def test_a_visit_is_requested_by_rejecting_or_by_the_reason() -> None:
    visit = t.REASON_VISIT_NEEDED.concept_json()
    assert visit_requested(review(status="rejected"))
    assert visit_requested(review(status="completed", statusReason=visit))
    assert visit_requested(review(status="completed", businessStatus=visit))
    assert not visit_requested(review(status="completed"))
    other = {"coding": [{"system": t.REASON_VISIT_NEEDED.system, "code": "other"}]}
    assert not visit_requested(review(status="completed", statusReason=other))


def test_the_answer_is_the_named_communication_else_the_task() -> None:
    comm = {"type": {"text": "answer"}, "valueReference": {"reference": "Communication/c1"}}
    text = {"type": {"text": "answer"}, "valueString": "take it at night"}
    assert _answer(review(output=[text, comm]), "Task/r") == ("Communication/c1", "communication")
    assert _answer(review(output=[text]), "Task/r") == ("Task/r", "text")
    other = {"type": {"text": "x"}, "valueReference": {"reference": "Observation/o"}}
    assert _answer(review(output=[other]), "Task/r") == ("Task/r", "none")
    assert _answer(review(), "Task/r") == ("Task/r", "none")


def test_response_due_in_practice_time() -> None:
    config = ClinicalLoopConfig(
        timezone="America/Chicago",
        urgent_response_business_hours=4,
        routine_response_business_days=2,
    )
    friday_4pm = datetime.fromisoformat("2026-03-06T16:00:00-06:00")
    assert response_due(config, "urgent", friday_4pm) == datetime.fromisoformat(
        "2026-03-09T11:00:00-05:00"  # 1 h on Friday, 3 h on Monday (after the DST change)
    )
    assert response_due(config, "routine", friday_4pm) == datetime.fromisoformat(
        "2026-03-10T16:00:00-05:00"
    )
    naive = datetime(2026, 3, 6, 22, 0)  # taken as UTC: 4 pm in Chicago
    assert response_due(config, "urgent", naive) == response_due(
        config, "urgent", naive.replace(tzinfo=UTC)
    )


# -- the sweeper's trigger (clinical_overdue) -------------------------------------------------


class Everything(InMemoryFhir):
    """A server that ignores search parameters (returns every Task) and records them."""

    def __init__(self) -> None:
        super().__init__()
        self.params: list[list[tuple[str, str]]] = []

    def search(self, resource_type: str, params: Any) -> list[Any]:
        self.params.append(list(params))
        return super().search(resource_type, [])


DUE = "2026-03-04T15:00:00+00:00"


def put(fhir: InMemoryFhir, task: Any) -> None:
    fhir.put(task.model_dump(mode="json", exclude_none=True))


def overdue(tid: str = "q1", due: str = DUE, *, tagged: bool = False, **kw: Any) -> Any:
    extra: dict[str, Any] = {"restriction": {"period": {"end": due}}}
    if tagged:
        extra["meta"] = {"tag": [t.BUSINESS_CLINICAL_ESCALATED.json()]}
    return review(tid, **extra, **kw)


AFTER = datetime(2026, 3, 4, 16, tzinfo=UTC)


def test_an_overdue_question_is_reported_once_with_its_level_and_due() -> None:
    fhir = Everything()
    put(fhir, overdue())
    [event] = clinical_overdue(fhir, AFTER)
    assert event.id == "sweep:clinical-overdue:Task/q1:1"
    assert event.subject == "Patient/p1" and event.time == AFTER
    assert event.data == {"task": "Task/q1", "level": 1, "due": "2026-03-04T15:00:00+00:00"}
    code = f"{t.TASK_CLINICAL_REVIEW.system}|{t.TASK_CLINICAL_REVIEW.code}"
    assert fhir.params == [
        [("code", code), ("status", "requested,received,accepted,ready,in-progress,on-hold")]
    ]


def test_the_deadline_is_compared_as_an_instant() -> None:
    fhir = Everything()
    put(fhir, overdue())
    chicago = datetime.fromisoformat("2026-03-04T08:59:00-06:00")  # 14:59 UTC: not yet
    assert clinical_overdue(fhir, chicago) == []
    assert len(clinical_overdue(fhir, datetime.fromisoformat("2026-03-04T10:00:00-06:00"))) == 1
    assert len(clinical_overdue(fhir, datetime(2026, 3, 4, 15, 0))) == 1  # naive: UTC, due now


def test_what_is_not_reported() -> None:
    fhir = Everything()
    put(fhir, overdue("a-later", "2026-03-05T15:00:00+00:00"))  # not due yet, listed first
    put(fhir, overdue("b-tagged", tagged=True))  # escalated already
    put(fhir, overdue("c-done", status="completed"))
    put(fhir, overdue("d-level2", level=2, focus="Task/x"))  # the last level
    put(
        fhir,
        build(
            "Task",
            {
                "id": "e-other",
                "status": "requested",
                "intent": "order",
                "for": {"reference": "Patient/p1"},
                "restriction": {"period": {"end": DUE}},
            },
        ),
    )  # not clinical
    put(fhir, overdue("f-due"))
    assert [e.data["task"] for e in clinical_overdue(fhir, AFTER)] == ["Task/f-due"]


def test_an_open_escalation_marks_its_question_escalated_even_without_the_tag() -> None:
    fhir = Everything()
    put(fhir, overdue("q1"))  # the server dropped the tag on update
    put(fhir, overdue("e1", "2026-03-05T15:00:00+00:00", level=1, focus="Task/q1"))
    assert clinical_overdue(fhir, AFTER) == []
    later = datetime(2026, 3, 5, 16, tzinfo=UTC)
    assert [e.id for e in clinical_overdue(fhir, later)] == ["sweep:clinical-overdue:Task/q1:2"]
