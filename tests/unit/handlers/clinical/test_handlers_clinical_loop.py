"""The clinical loop: deadline, escalation once per level, the provider's answer or visit request
back to the care manager; the question and answer text never leave the FHIR store."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carecoord.caremodel import terminology as t
from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent
from carecoord.errors import HandlerError
from carecoord.fhir.models import to_json
from carecoord.handlers.clinical.loop import clinical_overdue, open_clinical_items
from carecoord.handlers.clinical.routing import HANDLERS
from carecoord.handlers.jobs.sweeper import sweep
from support.handler_context import NOW, FakeFhir, care_team, ctx, event

handle = HANDLERS[0].handle
QUESTION = "Can he take ibuprofen with his warfarin for the knee pain?"
ANSWER = "No: use paracetamol up to 3 g a day and call if the pain persists."
CONFIG = {
    "covering_provider": "Practitioner/dr-cover",
    "clinical_lead": "Practitioner/dr-lead",
    "timezone": "UTC",
}
# NOW is Monday 10 March 2025 15:00 UTC: urgent due 4 practice hours later (2 h on Monday until
# 17:00, 2 h from Tuesday's 08:00) = Tue 10:00.
URGENT_DUE = datetime(2025, 3, 11, 10, 0, tzinfo=UTC)


def run(fhir: FakeFhir, ev: CloudEvent, config: dict[str, Any] | None = None) -> Effects:
    fx = handle(ev, ctx(fhir, CONFIG if config is None else config))
    fhir.apply(fx)
    return fx


def ask(fhir: FakeFhir, urgency: str = "urgent") -> Any:
    care_team(fhir, "p1", "Practitioner/cm-1", "Practitioner/dr-1")
    data = {"question": QUESTION, "urgency": urgency, "raised_by": "Practitioner/cm-1"}
    run(fhir, event("carecoord.clinical.question", "p1", data, "q-1"))
    (task,) = fhir.all("Task")
    return task


def at(when: datetime, ev: CloudEvent) -> CloudEvent:
    return ev.model_copy(update={"time": when})


def tasks(fhir: FakeFhir, code: t.Code) -> list[Any]:
    return [x for x in fhir.all("Task") if t.concept_has(x.code, code)]


def status_changed(task: Any, status: str | None = None) -> CloudEvent:
    data = {"task": f"Task/{task.id}", "status": status or task.status}
    return event("carecoord.task.status-changed", "p1", data, f"n-{task.id}-{task.meta.versionId}")


def provider_sets(fhir: FakeFhir, task: Any, status: str, **fields: Any) -> Any:
    data = to_json(fhir.read("Task", task.id))
    data.update(status=status, **fields)
    fhir.store[("Task", task.id)] = {**data, "meta": {"versionId": "9"}}
    return fhir.read("Task", task.id)


def test_the_question_task_carries_its_deadline_and_urgency() -> None:
    fhir = FakeFhir()
    task = ask(fhir)
    assert task.restriction.period.end == URGENT_DUE
    assert any(i.valueCode == "urgent" for i in task.input)
    routine = FakeFhir()
    task = ask(routine, "routine")
    assert task.restriction.period.end == datetime(2025, 3, 12, 15, 0, tzinfo=UTC)  # Wed 15:00


def test_unanswered_past_due_is_escalated_once_per_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fhir = FakeFhir()
    question = ask(fhir)
    assert clinical_overdue(fhir, URGENT_DUE - timedelta(seconds=1)) == []
    late = URGENT_DUE + timedelta(minutes=5)
    (overdue,) = clinical_overdue(fhir, late)
    assert overdue.id == f"sweep:clinical-overdue:Task/{question.id}:1"
    assert overdue.data["level"] == 1
    assert [e.id for e in sweep(fhir, late)] == [overdue.id]  # the sweeper's one new call

    fx = run(fhir, overdue)
    (escalated,) = fx.emits
    assert escalated.type == "carecoord.clinical.escalated"
    assert escalated.data["escalated_to"] == "Practitioner/dr-cover"
    assert escalated.data["level"] == 1
    again = run(fhir, overdue)  # replay (or a second sweeper at once): nothing twice
    assert again.writes == [] and again.emits == []
    assert clinical_overdue(fhir, late) == []

    original = fhir.read("Task", question.id)
    (e1,) = [x for x in tasks(fhir, t.TASK_CLINICAL_REVIEW) if x.id != question.id]
    assert original.status == "requested" and original.owner.reference == "Practitioner/dr-1"
    assert original.priority == "stat"  # urgent questions are stat already
    assert e1.owner.reference == "Practitioner/dr-cover"
    assert e1.focus.reference == f"Task/{question.id}"
    assert e1.priority == "stat"
    assert e1.restriction.period.end == datetime(2025, 3, 11, 14, 5, tzinfo=UTC)  # 4 h later

    # The covering provider does not answer either: level 2 goes to the clinical lead.
    later = datetime(2025, 3, 11, 15, 0, tzinfo=UTC)
    (second,) = clinical_overdue(fhir, later)
    assert second.id == f"sweep:clinical-overdue:Task/{question.id}:2"
    fx2 = run(fhir, second)
    assert fx2.emits[0].data["escalated_to"] == "Practitioner/dr-lead"
    assert fx2.emits[0].id != escalated.id
    assert clinical_overdue(fhir, later + timedelta(days=5)) == []  # no level 3
    assert len(tasks(fhir, t.TASK_CLINICAL_REVIEW)) == 3
    for emit in [*fx.emits, *fx2.emits]:
        assert QUESTION not in str(emit.data)
    assert "ibuprofen" not in caplog.text


def test_routine_questions_raise_their_priority_on_escalation() -> None:
    fhir = FakeFhir()
    question = ask(fhir, "routine")
    (overdue,) = clinical_overdue(fhir, datetime(2025, 3, 13, 9, 0, tzinfo=UTC))
    run(fhir, overdue)
    assert fhir.read("Task", question.id).priority == "urgent"


def test_an_early_or_unconfigured_escalation_does_nothing_or_fails_loudly() -> None:
    fhir = FakeFhir()
    question = ask(fhir)
    data = {"task": f"Task/{question.id}", "level": 1}
    early = event("carecoord.clinical.overdue", "p1", data, "early")
    assert run(fhir, early).writes == []  # NOW is before the deadline
    late = at(URGENT_DUE, early)
    with pytest.raises(HandlerError, match="covering_provider or on_call"):
        handle(late, ctx(fhir, {}))
    on_call = run(fhir, late, {"on_call": "PractitionerRole/on-call"})
    assert on_call.emits[0].data["escalated_to"] == "PractitionerRole/on-call"


def test_the_answer_goes_back_to_the_care_manager_and_replays_the_same_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fhir = FakeFhir()
    question = ask(fhir)
    run(fhir, at(URGENT_DUE, clinical_overdue(fhir, URGENT_DUE)[0]))  # escalated to dr-cover
    answer = [{"type": t.TASK_OUTPUT_ANSWER.concept_json(), "valueString": ANSWER}]
    done = provider_sets(fhir, question, "completed", output=answer)

    fx = run(fhir, status_changed(done))
    (answered,) = fx.emits
    assert answered.type == "carecoord.clinical.answered"
    assert answered.data["task"] == f"Task/{question.id}"
    assert answered.data["answer"] == "text"
    assert ANSWER not in str(answered.data) and QUESTION not in str(answered.data)
    assert "paracetamol" not in caplog.text
    (relay,) = tasks(fhir, t.TASK_RELAY_ANSWER)
    assert relay.owner.reference == "Practitioner/cm-1"
    assert relay.focus.reference == f"Task/{question.id}"
    (request,) = fhir.all("CommunicationRequest")
    assert request.recipient[0].reference == "Patient/p1"
    assert request.payload[0].contentReference.reference == f"Task/{question.id}"
    # The escalation nobody needs any more is closed.
    (e1,) = [x for x in tasks(fhir, t.TASK_CLINICAL_REVIEW) if x.id != question.id]
    assert e1.status == "cancelled"
    assert clinical_overdue(fhir, URGENT_DUE + timedelta(days=3)) == []

    replay = run(fhir, status_changed(done))
    assert [e.id for e in replay.emits] == [answered.id]
    assert len(tasks(fhir, t.TASK_RELAY_ANSWER)) == 1
    assert len(fhir.all("CommunicationRequest")) == 1
    items = open_clinical_items(fhir, "Practitioner/cm-1", URGENT_DUE)
    assert [(i.kind, i.task) for i in items] == [("relay-answer", f"Task/{relay.id}")]


def test_an_answer_from_the_covering_provider_as_a_communication() -> None:
    fhir = FakeFhir()
    question = ask(fhir)
    run(fhir, at(URGENT_DUE, clinical_overdue(fhir, URGENT_DUE)[0]))
    (e1,) = [x for x in tasks(fhir, t.TASK_CLINICAL_REVIEW) if x.id != question.id]
    output = [
        {
            "type": t.TASK_OUTPUT_ANSWER.concept_json(),
            "valueReference": {"reference": "Communication/c9"},
        }
    ]
    done = provider_sets(fhir, e1, "completed", output=output)
    (answered,) = run(fhir, status_changed(done)).emits
    assert answered.data["answer"] == "communication"
    assert answered.data["task"] == f"Task/{question.id}"
    assert answered.data["provider"] == "Practitioner/dr-cover"
    (request,) = fhir.all("CommunicationRequest")
    assert request.payload[0].contentReference.reference == "Communication/c9"
    assert fhir.read("Task", question.id).status == "cancelled"  # answered elsewhere


def test_a_provider_asking_for_a_visit_gives_the_care_manager_a_schedule_visit_task() -> None:
    fhir = FakeFhir()
    question = ask(fhir, "routine")
    rejected = provider_sets(
        fhir, question, "rejected", statusReason={"text": "Needs an exam: book a visit this week"}
    )
    fx = run(fhir, status_changed(rejected))
    (emit,) = fx.emits
    assert emit.type == "carecoord.clinical.visit-requested"
    assert "exam" not in str(emit.data)
    (visit,) = tasks(fhir, t.TASK_SCHEDULE_VISIT)
    assert visit.owner.reference == "Practitioner/cm-1"
    assert tasks(fhir, t.TASK_RELAY_ANSWER) == []
    # completed with the visit-needed code counts as a visit request too
    other = FakeFhir()
    q2 = ask(other)
    reason = t.REASON_VISIT_NEEDED.concept_json("come in")
    done = provider_sets(other, q2, "completed", statusReason=reason)
    assert run(other, status_changed(done)).emits[0].type == "carecoord.clinical.visit-requested"


def test_other_tasks_and_open_statuses_change_nothing() -> None:
    fhir = FakeFhir()
    question = ask(fhir)
    accepted = provider_sets(fhir, question, "accepted")
    assert run(fhir, status_changed(accepted)).writes == []
    fhir.put({"resourceType": "Task", "id": "w1", "status": "completed", "intent": "order",
              "for": {"reference": "Patient/p1"}})  # fmt: skip
    ev = event("carecoord.task.status-changed", "p1", {"task": "Task/w1", "status": "completed"})
    assert run(fhir, ev).emits == []
    other_patient = event(
        "carecoord.task.status-changed", "p2", {"task": f"Task/{question.id}", "status": "accepted"}
    )
    with pytest.raises(HandlerError, match="another patient"):
        handle(other_patient, ctx(fhir, CONFIG))


def test_open_clinical_items_lists_overdue_questions_of_the_care_manager() -> None:
    fhir = FakeFhir()
    question = ask(fhir)
    assert open_clinical_items(fhir, "Practitioner/cm-1", NOW) == []
    (item,) = open_clinical_items(fhir, "Practitioner/cm-1", URGENT_DUE)
    assert (item.kind, item.task, item.patient) == (
        "overdue-question",
        f"Task/{question.id}",
        "Patient/p1",
    )
    assert open_clinical_items(fhir, "Practitioner/cm-2", URGENT_DUE) == []
    # Escalated: overdue again only when the escalation's deadline has passed too.
    run(fhir, at(URGENT_DUE, clinical_overdue(fhir, URGENT_DUE)[0]))
    assert open_clinical_items(fhir, "Practitioner/cm-1", URGENT_DUE) == []
    assert len(open_clinical_items(fhir, "Practitioner/cm-1", URGENT_DUE + timedelta(days=1))) == 1
