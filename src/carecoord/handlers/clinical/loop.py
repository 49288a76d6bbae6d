"""The clinical loop after a question reaches the provider (handler "clinical-routing", whose
routing part is clinical/routing.py): a response deadline, escalation when it passes,
and bringing the provider's answer (or request for a visit) back to the care manager.

- Deadline: `response_due` — urgent questions `urgent_response_business_hours` (4) practice hours
  after they are asked, routine ones `routine_response_business_days` (2) business days; practice
  hours, holidays and time zone from the configuration (care/business_hours.py). Written as the
  question Task's restriction.period.end.
- `carecoord.clinical.overdue` (the sweeper, `clinical_overdue`): the question (level 1) or its
  level-1 escalation (level 2) passed its deadline unanswered -> a clinical-review Task of its own
  for the covering provider or on-call PractitionerRole (level 1) or the clinical lead (level 2),
  focus the question, due a new response window; the question keeps its owner and status, its
  priority goes one step up (routine -> urgent -> asap -> stat); the missed Task is tagged
  (businessStatus-coded meta.tag `clinical-escalated`) so the sweeper stops reporting it;
  emits `carecoord.clinical.escalated`. One escalation per level (identifier question : level).
- `carecoord.task.status-changed` (FHIR notifications, or an integration) for a clinical-review
  Task — the question or one of its escalations — re-read from the server:
  completed -> a relay-clinical-answer Task and a CommunicationRequest to the patient for the
  care manager, `carecoord.clinical.answered`; rejected, or completed with statusReason /
  businessStatus `visit-needed` -> a schedule-visit Task for the care manager,
  `carecoord.clinical.visit-requested`. The question's other open Tasks are cancelled
  (answered elsewhere). Other Tasks are not this handler's business.
- `open_clinical_items(fhir, care_manager, now)`: the care manager's overdue questions and
  answers / visit requests still to act on, for a daily worklist.

The question and the answer stay on the FHIR server (Task.input / Task.output, or the
Communication the provider names): never in logs, errors or emitted events. Event ids derive
from the question's Task reference and the level, so a replay re-emits the same ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Literal

from fhir.resources.R4B.resource import Resource
from pydantic import Field, field_validator, model_validator

from carecoord.caremodel import terminology as t
from carecoord.caremodel.builders import TaskPriority
from carecoord.caremodel.identifiers import (
    add_create,
    carecoord_identifier,
    identifier_search,
)
from carecoord.caremodel.workflow import FINAL, OPEN, transition
from carecoord.core.catalog import (
    ClinicalAnswered,
    ClinicalEscalated,
    ClinicalOverdue,
    ClinicalVisitRequested,
    TaskStatusChanged,
)
from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import FhirReader
from carecoord.core.router import Delivery, Handlers
from carecoord.errors import HandlerError, InvalidTransition
from carecoord.fhir.batch_reads import search_together
from carecoord.fhir.bundles import version_of
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.models import to_json
from carecoord.handlers.care.business_hours import DEFAULT_HOURS, PracticeCalendar
from carecoord.handlers.care.event_ids import derived_id
from carecoord.handlers.care.model import as_instant, build, patient_of, reference_str
from carecoord.handlers.care.old_type_names import old_type_names
from carecoord.handlers.care.patient_context import patient_team
from carecoord.handlers.clinical.builders import (
    answer_relay_request,
    care_manager_task,
    clinical_escalation_task,
)

log = logging.getLogger(__name__)

MAX_LEVEL = 2
SWEEP_SOURCE = "urn:carecoord:sweep"
PRIORITIES: tuple[TaskPriority, ...] = ("routine", "urgent", "asap", "stat")
ESCALATED_TAG = t.BUSINESS_CLINICAL_ESCALATED
Urgency = Literal["routine", "urgent"]

_PRACTITIONER = r"^(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}$"


class ClinicalLoopConfig(HandlerConfig):
    """Response times and escalation targets of clinical questions (part of the
    clinical-routing handler's configuration)."""

    config_name: ClassVar[str] = "clinical-routing"

    timezone: str = "UTC"  # IANA name of the practice's zone, e.g. America/Chicago
    # Opening hours per weekday (mon..sun, "HH:MM-HH:MM"); a day not listed is closed.
    practice_hours: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_HOURS))
    holidays: list[date] = Field(default_factory=list)  # closed all day
    urgent_response_business_hours: float = Field(default=4.0, gt=0, le=24 * 31)
    routine_response_business_days: int = Field(default=2, ge=1, le=31)
    # Level 1: the covering provider, else the practice's on-call PractitionerRole.
    covering_provider: str | None = Field(default=None, pattern=_PRACTITIONER)
    on_call: str | None = Field(default=None, pattern=r"^PractitionerRole/[A-Za-z0-9\-.]{1,64}$")
    # Level 2 (the second missed deadline).
    clinical_lead: str | None = Field(default=None, pattern=_PRACTITIONER)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        PracticeCalendar.of(timezone=value)
        return value

    @field_validator("practice_hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, str]) -> dict[str, str]:
        PracticeCalendar.of(hours=value)
        return value

    @model_validator(mode="after")
    def _calendar_reaches_open_days(self) -> ClinicalLoopConfig:
        self.calendar().next_open(datetime(2000, 1, 1, tzinfo=UTC))
        return self

    def calendar(self) -> PracticeCalendar:
        return PracticeCalendar.of(
            timezone=self.timezone, hours=self.practice_hours, holidays=self.holidays
        )

    def escalation_target(self, level: int) -> str | None:
        first = self.covering_provider or self.on_call
        return first if level == 1 else self.clinical_lead


def response_due(config: ClinicalLoopConfig, urgency: str, at: datetime) -> datetime:
    """When an answer is due for a question of `urgency` asked (or escalated) at `at`."""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    cal = config.calendar()
    if urgency == "urgent":
        return cal.add_business_hours(at, config.urgent_response_business_hours)
    return cal.add_business_days(at, config.routine_response_business_days)


def raised(priority: str | None) -> TaskPriority:
    """One step up: routine -> urgent -> asap -> stat (stat stays)."""
    index = PRIORITIES.index(priority) if priority in PRIORITIES else 0
    return PRIORITIES[min(index + 1, len(PRIORITIES) - 1)]


# ---------------------------------------------------------------------------------------------
# Reading clinical-review Tasks


def is_clinical(task: Any) -> bool:
    return task.get_resource_type() == "Task" and t.concept_has(task.code, t.TASK_CLINICAL_REVIEW)


def _input(task: Any, code: t.Code) -> Any:
    for item in getattr(task, "input", None) or []:
        if t.concept_has(item.type, code):
            for attr in ("valueCode", "valueInteger", "valueString"):
                value = getattr(item, attr, None)
                if value is not None:
                    return value
    return None


def level_of(task: Any) -> int:
    """0 for the question itself, n for its level-n escalation Task."""
    value = _input(task, t.TASK_INPUT_ESCALATION_LEVEL)
    return int(value) if isinstance(value, int) else 0


def question_of(task: Any) -> str:
    """The question's Task reference: the Task itself, or the focus of an escalation."""
    if level_of(task):
        focus = reference_str(task.focus)
        if focus and focus.startswith("Task/"):
            return focus
    return f"Task/{task.id}"


def urgency_of(task: Any) -> Urgency:
    value = _input(task, t.TASK_INPUT_URGENCY)
    if value in ("routine", "urgent"):
        return value  # type: ignore[no-any-return]
    return "urgent" if task.priority == "stat" else "routine"  # written before urgency inputs


def due_of(task: Any) -> datetime | None:
    restriction = getattr(task, "restriction", None)
    period = restriction.period if restriction is not None else None
    return as_instant(period.end) if period is not None else None


def is_escalated(task: Any) -> bool:
    meta = task.meta
    return any(ESCALATED_TAG.matches(tag) for tag in (meta.tag if meta and meta.tag else []))


def visit_requested(task: Any) -> bool:
    """Rejected by the provider, or completed with statusReason / businessStatus visit-needed."""
    if task.status == "rejected":
        return True
    for concept in (task.statusReason, task.businessStatus):
        if any(
            c.code == t.REASON_VISIT_NEEDED.code for c in getattr(concept, "coding", None) or []
        ):
            return True
    return False


def _read_task(fhir: FhirReader, reference: str) -> Any | None:
    try:
        return fhir.read("Task", reference.removeprefix("Task/"))
    except (FhirNotFound, FhirGone):
        return None


def _escalation(fhir: FhirReader, question: str, level: int) -> Any | None:
    params = identifier_search("clinical-escalation", question, str(level))
    system, _, value = params["identifier"].partition("|")
    found = fhir.search("Task", params)  # re-checked: a server may ignore the parameter
    return next(
        (
            r
            for r in found
            if r.get_resource_type() == "Task"
            and any(i.system == system and i.value == value for i in r.identifier or [])  # type: ignore[attr-defined]
        ),
        None,
    )


def _care_plan(task: Any) -> str | None:
    plans = [reference_str(b) for b in getattr(task, "basedOn", None) or []]
    return next((p for p in plans if p and p.startswith("CarePlan/")), None)


def _ident(resource: Resource) -> str:
    found = carecoord_identifier(resource)
    return f"{found[0]}|{found[1]}" if found else ""


def _tagged(task: Any, **fields: Any) -> Resource:
    data = to_json(task)
    data.update(fields)
    tags = data.setdefault("meta", {}).setdefault("tag", [])
    if not any(ESCALATED_TAG.matches(tag) for tag in tags):
        tags.append(ESCALATED_TAG.json())
    return build("Task", data)


def _for_patient(task: Any, pid: str, event: CloudEvent) -> None:
    if patient_of(task) != pid:
        raise HandlerError("clinical Task is for another patient", event_id=event.id)


# ---------------------------------------------------------------------------------------------
# carecoord.clinical.overdue


# The loop's routes: part of the clinical-routing handler, whose router
# (carecoord.handlers.clinical.routing) includes them after its question route.
handlers = Handlers("clinical-routing", config=ClinicalLoopConfig)


@handlers.on(ClinicalOverdue)
def handle_overdue(d: Delivery[ClinicalOverdue, ClinicalLoopConfig]) -> Effects:
    fx = Effects()
    question = _read_task(d.fhir, d.data.task)
    if question is None:
        log.warning("overdue clinical question no longer exists")
        return fx
    if not is_clinical(question) or level_of(question):
        raise HandlerError("not a clinical question Task", event_id=d.event.id, task=d.data.task)
    _for_patient(question, d.patient_id, d.event)
    if question.status in FINAL or question.status == "draft":
        return fx  # answered (or withdrawn) meanwhile
    if _escalation(d.fhir, d.data.task, d.data.level) is not None:
        log.info("clinical question already escalated")
        return fx  # one escalation per level
    missed = question if d.data.level == 1 else _escalation(d.fhir, d.data.task, d.data.level - 1)
    at = d.aware_time()
    missed_due = due_of(missed) if missed is not None else None
    if missed is None or missed.status in FINAL or missed_due is None or at < missed_due:
        log.info("clinical question not overdue at this level")
        return fx
    owner = d.config.escalation_target(d.data.level)
    if owner is None:
        keys = "covering_provider or on_call" if d.data.level == 1 else "clinical_lead"
        raise HandlerError(
            f"no one to escalate the overdue clinical question to: configure {keys} of "
            "clinical-routing",
            event_id=d.event.id,
            level=d.data.level,
        )
    priority = raised(question.priority)
    urgency = urgency_of(question)
    due = response_due(d.config, urgency, at)
    escalation = clinical_escalation_task(
        question=d.data.task,
        level=d.data.level,
        patient=d.patient,
        owner=owner,
        priority=priority,
        urgency=urgency,
        due=due,
        requester=reference_str(question.requester),
        care_plan=_care_plan(question),
        authored_on=at,
    )
    add_create(fx, escalation)
    if missed is question:
        fx.update(_tagged(question, priority=priority), version_of(question))
    else:
        fx.update(_tagged(missed), version_of(missed))
        fx.update(build("Task", {**to_json(question), "priority": priority}), version_of(question))
    fx.emit(
        ClinicalEscalated(
            task=d.data.task,
            level=d.data.level,
            escalated_to=owner,
            escalation_task_identifier=_ident(escalation),
            priority=priority,
            urgency=urgency,
            missed_due=missed_due.isoformat(),
            due=due.isoformat(),
        ),
        d.patient,
        id=derived_id(d.data.task, f"level-{d.data.level}", ClinicalEscalated.event_type),
    )
    log.info(
        "overdue clinical question escalated",
        extra={"level": d.data.level, "owner": owner},
    )
    return fx


# ---------------------------------------------------------------------------------------------
# carecoord.task.status-changed


@handlers.on(TaskStatusChanged)
def handle_task_status(d: Delivery[TaskStatusChanged, ClinicalLoopConfig]) -> Effects:
    fx = Effects()
    task = _read_task(d.fhir, d.data.task)
    if task is None or not is_clinical(task):
        log.debug("task status not for the clinical loop")
        return fx
    _for_patient(task, d.patient_id, d.event)
    if task.status != d.data.status:  # the server is the truth: act on what it has
        log.info("acting on the clinical Task's status on the server")
    visit = visit_requested(task)
    if task.status != "completed" and not visit:
        return fx
    q_ref = question_of(task)
    question = task if q_ref == d.data.task else _read_task(d.fhir, q_ref)
    if question is None:
        raise HandlerError("the escalated question's Task is gone", event_id=d.event.id)
    care_manager = _care_manager(d.fhir, d.patient_id, question)
    if care_manager is None:
        raise HandlerError(
            "no care manager to bring the provider's reply to: the question has no requester "
            "and the patient no active care team care manager",
            event_id=d.event.id,
        )
    at = d.aware_time()
    priority = question.priority if question.priority in PRIORITIES else "routine"
    common: dict[str, Any] = {
        "question": q_ref,
        "patient": d.patient,
        "care_manager": care_manager,
        "priority": priority,
        "care_plan": _care_plan(question),
        "authored_on": at,
    }
    due = response_due(d.config, urgency_of(question), at)
    provider = reference_str(task.owner)
    if visit:
        todo = care_manager_task(
            kind="visit", source=d.data.task, due=due, requester=provider, **common
        )
        add_create(fx, todo)
        reply: ClinicalAnswered | ClinicalVisitRequested = ClinicalVisitRequested(
            task=q_ref, replied_task=d.data.task, provider=provider or "",
            visit_task_identifier=_ident(todo),
        )  # fmt: skip
    else:
        answer, answer_kind = _answer(task, d.data.task)
        todo = care_manager_task(
            kind="relay", source=d.data.task, due=due, requester=provider, **common
        )
        add_create(fx, todo)
        request = answer_relay_request(answer=answer, **common)
        add_create(fx, request)
        reply = ClinicalAnswered(
            task=q_ref, replied_task=d.data.task, provider=provider or "", answer=answer_kind,
            relay_task_identifier=_ident(todo), communication_request_identifier=_ident(request),
        )  # fmt: skip
    _close_others(fx, d.fhir, q_ref, question, d.data.task, at)
    fx.emit(reply, d.patient, id=derived_id(q_ref, reply.event_type))
    log.info("clinical reply brought to the care manager")
    return fx


def _answer(task: Any, task_ref: str) -> tuple[str, str]:
    """(what the patient is to be told, kind): the Communication the provider named, else the
    provider's Task (its output holds the text)."""
    kind = "none"
    for out in getattr(task, "output", None) or []:
        ref = reference_str(getattr(out, "valueReference", None))
        if ref and ref.startswith("Communication/"):
            return ref, "communication"
        if getattr(out, "valueString", None):
            kind = "text"
    return task_ref, kind


def _care_manager(fhir: FhirReader, pid: str, question: Any) -> str | None:
    requester = reference_str(question.requester)
    if requester and requester.startswith(("Practitioner/", "PractitionerRole/")):
        return requester
    return patient_team(fhir, pid).care_manager


def _close_others(
    fx: Effects, fhir: FhirReader, q_ref: str, question: Any, replied: str, at: datetime
) -> None:
    """Cancel the question's other open Tasks (the question, its escalations): answered."""
    others = [question] + [_escalation(fhir, q_ref, n) for n in range(1, MAX_LEVEL + 1)]
    for other in others:
        if other is None or f"Task/{other.id}" == replied or other.status in FINAL:
            continue
        try:
            closed = transition(other, "cancelled", reason="Answered by another provider", at=at)
        except InvalidTransition:  # pragma: no cover - every open status may be cancelled
            continue
        data = to_json(closed)
        data["statusReason"] = t.REASON_ANSWERED_ELSEWHERE.concept_json(
            "Answered by another provider"
        )
        fx.update(build("Task", data), version_of(other))


# ---------------------------------------------------------------------------------------------
# The sweeper's trigger


def clinical_overdue(fhir: FhirReader, now: datetime) -> list[CloudEvent]:
    """`carecoord.clinical.overdue` for every open clinical-review Task past its deadline and not
    escalated yet: the question (level 1) or its level-1 escalation (level 2); id
    `sweep:clinical-overdue:Task/<question>:<level>`."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    code = f"{t.TASK_CLINICAL_REVIEW.system}|{t.TASK_CLINICAL_REVIEW.code}"
    found: list[Any] = fhir.search("Task", [("code", code), ("status", ",".join(OPEN))])
    open_tasks = [x for x in found if is_clinical(x) and x.status in OPEN]
    # An open escalation at a level marks the lower level escalated as well (a server that drops
    # meta.tag on update does not make the sweeper report it again).
    levels = {(question_of(x), level_of(x)) for x in open_tasks if level_of(x)}
    events = []
    for task in open_tasks:
        level = level_of(task) + 1
        question = question_of(task)
        if is_escalated(task) or (question, level) in levels:
            continue
        due = due_of(task)
        patient = patient_of(task)
        if level > MAX_LEVEL or due is None or now < due or patient is None:
            continue
        events.append(
            CloudEvent(
                id=f"sweep:clinical-overdue:{question}:{level}",
                source=SWEEP_SOURCE,
                type=ClinicalOverdue.event_type,
                time=now,
                subject=f"Patient/{patient}",
                data={"task": question, "level": level, "due": due.isoformat()},
            )
        )
    return events


# ---------------------------------------------------------------------------------------------
# For the care manager's worklist


@dataclass(frozen=True)
class ClinicalItem:
    """One line of a care manager's call list (ids and codes only, never the text)."""

    kind: Literal["overdue-question", "relay-answer", "schedule-visit"]
    patient: str  # "Patient/<id>"
    task: str  # the Task to open: the question, or the care manager's relay / visit Task
    question: str  # the question's Task
    priority: str
    due: datetime | None


def open_clinical_items(fhir: FhirReader, care_manager: str, now: datetime) -> list[ClinicalItem]:
    """The care manager's clinical items at `now`: questions they raised that are past their
    current deadline unanswered, and answers to relay / visits to schedule still open (ordered
    by priority, then due)."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    items: list[ClinicalItem] = []
    open_statuses = ",".join(OPEN)
    review = f"{t.TASK_CLINICAL_REVIEW.system}|{t.TASK_CLINICAL_REVIEW.code}"
    answers = ",".join(f"{c.system}|{c.code}" for c in (t.TASK_RELAY_ANSWER, t.TASK_SCHEDULE_VISIT))
    # Bounded to the care manager: the questions they raised (their escalations carry the same
    # requester) and the answers / visits they own; one batch where the server allows it.

    raised, owned = search_together(
        fhir,
        [
            ("Task", [("code", review), ("status", open_statuses), ("requester", care_manager)]),
            ("Task", [("code", answers), ("status", open_statuses), ("owner", care_manager)]),
        ],
    )
    found: list[Any] = list({f"Task/{r.id}": r for r in [*raised, *owned]}.values())
    tasks = [r for r in found if r.get_resource_type() == "Task" and r.status in OPEN]
    by_question: dict[str, list[Any]] = {}
    for task in tasks:
        if is_clinical(task):
            by_question.setdefault(question_of(task), []).append(task)
    for task in tasks:
        patient = patient_of(task)
        if patient is None:
            continue
        if is_clinical(task):
            if level_of(task) or reference_str(task.requester) != care_manager:
                continue
            chain = by_question.get(f"Task/{task.id}", [task])
            deadline = max((d for d in map(due_of, chain) if d is not None), default=None)
            if deadline is not None and now >= deadline:
                items.append(_item("overdue-question", task, f"Task/{task.id}", deadline))
        elif reference_str(task.owner) == care_manager:
            kind: Literal["relay-answer", "schedule-visit"] = (
                "relay-answer"
                if t.concept_has(task.code, t.TASK_RELAY_ANSWER)
                else "schedule-visit"
            )
            question = next(
                (b for b in map(reference_str, task.basedOn or []) if b and b.startswith("Task/")),
                reference_str(task.focus) or "",
            )
            items.append(_item(kind, task, question, due_of(task)))
    order: dict[str, int] = {p: i for i, p in enumerate(reversed(PRIORITIES))}
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(items, key=lambda i: (order.get(i.priority, 9), i.due or far, i.task))


def _item(kind: Any, task: Any, question: str, due: datetime | None) -> ClinicalItem:
    return ClinicalItem(
        kind=kind,
        patient=f"Patient/{patient_of(task)}",
        task=f"Task/{task.id}",
        question=question,
        priority=str(task.priority or "routine"),
        due=due,
    )


__all__ = [
    "ClinicalItem",
    "ClinicalLoopConfig",
    "clinical_overdue",
    "handle_overdue",
    "handle_task_status",
    "handlers",
    "open_clinical_items",
    "response_due",
]

__getattr__ = old_type_names(
    __name__,
    OVERDUE=ClinicalOverdue,
    TASK_STATUS_CHANGED=TaskStatusChanged,
    ESCALATED=ClinicalEscalated,
    ANSWERED=ClinicalAnswered,
    VISIT_REQUESTED=ClinicalVisitRequested,
)
