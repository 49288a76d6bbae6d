"""Builders for the clinical loop after a question is routed (carecoord.caremodel.builders's
clinical_review_task): escalation of an unanswered question, and what the care manager gets when
the provider answers (a relay Task and a CommunicationRequest to the patient) or asks for a visit.

None of them copies the question or the answer: they point at the question's Task (focus / about)
and at the answer (the provider's Task, or the Communication it names). Identifiers derive from
the question's Task reference (and the escalation level), so each exists once per question.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fhir.resources.R4B.communicationrequest import CommunicationRequest
from fhir.resources.R4B.task import Task

from carecoord.caremodel import terminology as t
from carecoord.caremodel._build import concept, finish, identifiers, instant, ref
from carecoord.caremodel.builders import PRACTITIONER, TaskPriority, _task
from carecoord.fhir.models import DEFAULT_VERSION, FhirVersion

Urgency = Literal["routine", "urgent"]


def clinical_escalation_task(
    *,
    question: str,
    level: int,
    patient: str,
    owner: str,
    priority: TaskPriority,
    urgency: Urgency,
    due: datetime,
    requester: str | None = None,
    care_plan: str | None = None,
    authored_on: datetime | None = None,
    version: FhirVersion = DEFAULT_VERSION,
) -> Task:
    """The question `question` (its clinical-review Task) escalated at `level` to `owner` (the
    covering provider / on-call role, then the clinical lead): a clinical-review Task of its own
    (status requested, focus the question's Task, restriction.period.end = `due`, input the level
    and the urgency). The question text stays in the focus Task. Identifier: clinical-escalation |
    question : level."""
    ref(question, expect="Task")
    data = _task(
        identifier=identifiers("clinical-escalation", question, str(level)),
        status="requested",
        code=t.TASK_CLINICAL_REVIEW,
        patient=patient,
        owner=_practitioner(owner),
        requester=requester,
        priority=priority,
        authored_on=authored_on,
        based_on=[care_plan] if care_plan else [],
        focus=question,
        due=due,
        description=f"Clinical question unanswered past due, escalated (level {level})",
        version=version,
    )
    data["input"] = [
        {"type": concept(t.TASK_INPUT_ESCALATION_LEVEL), "valueInteger": level},
        {"type": concept(t.TASK_INPUT_URGENCY), "valueCode": urgency},
    ]
    return finish(Task, data, version)


def care_manager_task(
    *,
    kind: Literal["relay", "visit"],
    question: str,
    source: str,
    patient: str,
    care_manager: str,
    priority: TaskPriority,
    due: datetime,
    requester: str | None = None,
    care_plan: str | None = None,
    authored_on: datetime | None = None,
    version: FhirVersion = DEFAULT_VERSION,
) -> Task:
    """What the care manager does after the provider's reply: "relay" the answer to the patient
    (code relay-clinical-answer) or "visit", schedule the visit the provider asked for (code
    schedule-visit). Task (status ready, owner the care manager, focus `source`, the provider's
    Task that replied, basedOn the question's Task and the CarePlan, restriction.period.end =
    `due`). Identifier: clinical-relay | question, or clinical-visit | question."""
    code = t.TASK_RELAY_ANSWER if kind == "relay" else t.TASK_SCHEDULE_VISIT
    ref(question, expect="Task")
    data = _task(
        identifier=identifiers(f"clinical-{kind}", question),
        status="ready",
        code=code,
        patient=patient,
        owner=_practitioner(care_manager),
        requester=requester,
        priority=priority,
        authored_on=authored_on,
        based_on=[question, care_plan] if care_plan else [question],
        focus=source,
        due=due,
        description=code.display,
        version=version,
    )
    return finish(Task, data, version)


def answer_relay_request(
    *,
    question: str,
    answer: str,
    patient: str,
    care_manager: str,
    priority: TaskPriority,
    care_plan: str | None = None,
    authored_on: datetime | None = None,
    version: FhirVersion = DEFAULT_VERSION,
) -> CommunicationRequest:
    """The answer is to be brought to the patient by the care manager: CommunicationRequest
    (status active, category notification, recipient the patient, requester and sender the care
    manager, about the question's Task, payload.contentReference `answer`: the Communication the
    provider named, else the provider's Task holding the answer text). Identifier:
    clinical-relay-request | question."""
    ref(question, expect="Task")
    data: dict[str, Any] = {
        "resourceType": "CommunicationRequest",
        "identifier": identifiers("clinical-relay-request", question),
        "basedOn": [ref(care_plan, expect="CarePlan")] if care_plan else [],
        "status": "active",
        "category": [concept(t.COMM_CATEGORY_NOTIFICATION, text="clinical answer")],
        "priority": priority,
        "subject": ref(patient, expect="Patient"),
        "about": [ref(question, expect="Task")],
        "recipient": [ref(patient, expect="Patient")],
        "requester": ref(care_manager, expect=PRACTITIONER),
        "sender": ref(care_manager, expect=PRACTITIONER),
        "payload": [{"contentReference": ref(answer, expect=("Communication", "Task"))}],
        "authoredOn": instant(authored_on) if authored_on else None,
    }
    if version == "R5":
        data["intent"] = "order"
    return finish(CommunicationRequest, data, version)


def _practitioner(reference: str) -> str:
    ref(reference, expect=PRACTITIONER)
    return reference


__all__ = ["answer_relay_request", "care_manager_task", "clinical_escalation_task"]
