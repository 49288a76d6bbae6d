"""Builders for care-management concepts (docs/fhir-mapping.md).

Builds, each with its deterministic business identifier (carecoord.caremodel.identifiers):
- care_plan: CarePlan of a program enrolment (CCM, PCM, RPM, TCM, BHI, APCM)
- care_team: CareTeam of the enrolment (care manager as care coordinator, provider)
- care_goal: Goal of a care plan
- outreach_request: CommunicationRequest for the monthly outreach
- outreach_attempt: Communication for one attempt (completed, or not-done with a reason)
- escalation_task: Task escalating unanswered outreach (urgent, focus the request)
- work_task: Task for care-management work (medication reconciliation, assessment, review)
- clinical_review_task: Task asking the provider to answer a clinical question
- charge_item: ChargeItem for a billing threshold reached (CPT code, month)

All arguments are keyword-only. References are "Type/id" strings or urn:uuid fullUrls of resources
created in the same transaction. `version` selects R4 (default, fhir.resources.R4B) or R5 (the
object is then the fhir.resources R5 class; the annotation names the R4 class).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Literal

from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.chargeitem import ChargeItem
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.communicationrequest import CommunicationRequest
from fhir.resources.R4B.goal import Goal
from fhir.resources.R4B.task import Task

from carecoord.caremodel import profiles
from carecoord.caremodel import terminology as t
from carecoord.caremodel._build import (
    codeable_reference,
    concept,
    finish,
    identifiers,
    instant,
    month_period,
    period,
    ref,
    ref_id,
)
from carecoord.caremodel.workflow import check_task_status
from carecoord.core.vocabulary import Channel, Outcome, Program
from carecoord.fhir.models import DEFAULT_VERSION, FhirVersion

WorkType = Literal["medication-reconciliation", "assessment", "care-plan-review"]
TaskPriority = Literal["routine", "urgent", "asap", "stat"]

PRACTITIONER = ("Practitioner", "PractitionerRole")
CARE_ACTIVITY = (
    "Task",
    "ServiceRequest",
    "CommunicationRequest",
    "Appointment",
    "MedicationRequest",
)


def _program(program: str) -> t.Code:
    return t.code_named(t.PROGRAMS, program, "program")


def _month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def care_plan(
    *,
    patient: str,
    program: Program,
    start: date,
    end: date | None = None,
    care_team: str | None = None,
    addresses: Sequence[str] = (),
    goals: Sequence[str] = (),
    activities: Sequence[str] = (),
    author: str | None = None,
    status: Literal["draft", "active", "on-hold", "revoked", "completed"] = "active",
    version: FhirVersion = DEFAULT_VERSION,
) -> CarePlan:
    """CarePlan for the enrolment of `patient` in `program` from `start`.

    Identifier: care-plan | patient id : program : start. Category: US Core assess-plan plus the
    program (carecoord care-program code system). `addresses` -> Conditions, `goals` -> Goals,
    `activities` -> Task/ServiceRequest/CommunicationRequest references (activity.reference; no
    inline activity.detail). `author` (the care manager) is R4 author / R5 custodian.
    """
    prog = _program(program)
    title = f"{prog.display} care plan"
    data: dict[str, Any] = {
        "resourceType": "CarePlan",
        "meta": profiles.meta_profile(profiles.US_CORE_CARE_PLAN),
        # US Core CarePlan: text (status generated | additional, div) is must-support; the
        # narrative names the program and dates only, never PHI beyond what the plan says.
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
            f"{title} from {start.isoformat()}{f' to {end.isoformat()}' if end else ''}</div>",
        },
        "identifier": identifiers("care-plan", ref_id(patient), program, start.isoformat()),
        "status": status,
        "intent": "plan",
        "category": [concept(t.CAREPLAN_ASSESS_PLAN), concept(prog)],
        "title": title,
        "subject": ref(patient, expect="Patient"),
        "period": period(start, end),
        "careTeam": [ref(care_team, expect="CareTeam")] if care_team else [],
        "addresses": [codeable_reference(_checked(c, "Condition"), version) for c in addresses],
        "goal": [ref(g, expect="Goal") for g in goals],
    }
    activity_key = "reference" if version == "R4" else "plannedActivityReference"
    data["activity"] = [{activity_key: ref(a, expect=CARE_ACTIVITY)} for a in activities]
    if author:
        data["author" if version == "R4" else "custodian"] = ref(
            author, expect=(*PRACTITIONER, "Organization", "CareTeam")
        )
    return finish(CarePlan, data, version)


def _checked(reference: str, expect: str | Iterable[str]) -> str:
    """`reference` itself, once `ref` has checked it is a reference to one of `expect`."""
    ref(reference, expect=expect)
    return reference


def care_team(
    *,
    patient: str,
    program: Program,
    start: date,
    care_manager: str,
    provider: str,
    organization: str | None = None,
    version: FhirVersion = DEFAULT_VERSION,
) -> CareTeam:
    """CareTeam of an enrolment: the care manager (role care coordinator, SNOMED 768820003) and
    the provider (role primary care physician). Identifier: care-team | patient : program : start.
    """
    prog = _program(program)

    def participant(member: str, role: t.Code) -> dict[str, Any]:
        out: dict[str, Any] = {"member": ref(member, expect=PRACTITIONER)}
        out["role"] = [concept(role)] if version == "R4" else concept(role)
        if version == "R4":
            out["period"] = period(start)
        return out

    data: dict[str, Any] = {
        "resourceType": "CareTeam",
        "meta": profiles.meta_profile(profiles.US_CORE_CARE_TEAM),
        "identifier": identifiers("care-team", ref_id(patient), program, start.isoformat()),
        "status": "active",
        "category": [concept(t.CARE_TEAM_LONGITUDINAL)],
        "name": f"{prog.display} care team",
        "subject": ref(patient, expect="Patient"),
        "period": period(start),
        "participant": [
            participant(care_manager, t.ROLE_CARE_COORDINATOR),
            participant(provider, t.ROLE_PRIMARY_CARE_PHYSICIAN),
        ],
        "managingOrganization": [ref(organization, expect="Organization")] if organization else [],
    }
    return finish(CareTeam, data, version)


def care_goal(
    *,
    patient: str,
    key: str,
    description: t.Code | str,
    addresses: Sequence[str] = (),
    start: date | None = None,
    due: date | None = None,
    category: t.Code | None = None,
    lifecycle_status: Literal["proposed", "planned", "accepted", "active", "completed"] = "active",
    version: FhirVersion = DEFAULT_VERSION,
) -> Goal:
    """Goal of a care plan. `description` is a Code (with display) or plain text (no PHI please:
    it is shown in lists). Identifier: goal | patient : key (e.g. the enrolment's event id)."""
    desc = concept(description) if isinstance(description, t.Code) else concept(text=description)
    data: dict[str, Any] = {
        "resourceType": "Goal",
        "identifier": identifiers("goal", ref_id(patient), key),
        "lifecycleStatus": lifecycle_status,
        "achievementStatus": concept(t.GOAL_IN_PROGRESS),
        "category": [concept(category)] if category else [],
        "description": desc,
        "subject": ref(patient, expect="Patient"),
        "startDate": start.isoformat() if start else None,
        "target": [{"dueDate": due.isoformat()}] if due else [],
        "addresses": [ref(a, expect="Condition") for a in addresses],
    }
    return finish(Goal, data, version)


def outreach_request(
    *,
    patient: str,
    program: Program,
    month: date,
    care_manager: str,
    care_plan: str | None = None,
    channel: Channel = "phone",
    authored_on: datetime | None = None,
    version: FhirVersion = DEFAULT_VERSION,
) -> CommunicationRequest:
    """The monthly outreach due: CommunicationRequest (status active, occurrencePeriod = the
    calendar month containing `month`, medium per channel, recipient the patient, requester the
    care manager, basedOn the CarePlan). Identifier: outreach-request | patient : program : YYYY-MM.
    """
    first, last = month_period(month)
    medium = t.CHANNEL_MEDIUM[channel]
    data: dict[str, Any] = {
        "resourceType": "CommunicationRequest",
        "identifier": identifiers("outreach-request", ref_id(patient), program, _month_key(first)),
        "basedOn": [ref(care_plan, expect="CarePlan")] if care_plan else [],
        "status": "active",
        "category": [concept(t.COMM_CATEGORY_REMINDER, text="care-management outreach")],
        "priority": "routine",
        "medium": [concept(medium, text=channel)],
        "subject": ref(patient, expect="Patient"),
        "recipient": [ref(patient, expect="Patient")],
        "requester": ref(care_manager, expect=PRACTITIONER),
        "occurrencePeriod": period(first, last),
        "authoredOn": instant(authored_on) if authored_on else None,
    }
    if version == "R5":
        data["intent"] = "order"
    return finish(CommunicationRequest, data, version)


def outreach_attempt(
    *,
    key: str,
    patient: str,
    outreach: str,
    channel: Channel,
    outcome: Outcome,
    attempted_at: datetime,
    by: str,
    version: FhirVersion = DEFAULT_VERSION,
) -> Communication:
    """One outreach attempt: Communication basedOn the CommunicationRequest `outreach`.

    answered -> status completed; otherwise status not-done with statusReason from
    communication-not-done-reason (no-answer/voicemail -> recipient-unavailable, wrong-number ->
    invalid-phone-number, declined -> patient-objection; the outcome is its text). `sent` holds
    the time of the attempt. Identifier: outreach-attempt | key (the attempt event's id).
    """
    reason = t.OUTREACH_OUTCOME_NOT_DONE_REASON[outcome]
    data: dict[str, Any] = {
        "resourceType": "Communication",
        "identifier": identifiers("outreach-attempt", key),
        "basedOn": [ref(outreach, expect="CommunicationRequest")],
        "status": "completed" if reason is None else "not-done",
        "statusReason": concept(reason, text=outcome) if reason else None,
        "category": [concept(t.COMM_CATEGORY_REMINDER, text="care-management outreach")],
        "medium": [concept(t.CHANNEL_MEDIUM[channel], text=channel)],
        "subject": ref(patient, expect="Patient"),
        "recipient": [ref(patient, expect="Patient")],
        "sender": ref(by, expect=(*PRACTITIONER, "Organization", "CareTeam")),
        "sent": instant(attempted_at),
    }
    return finish(Communication, data, version)


def _task(
    *,
    identifier: list[dict[str, str]],
    status: str,
    code: t.Code,
    patient: str,
    owner: str | None,
    requester: str | None,
    priority: str,
    authored_on: datetime | None,
    based_on: Sequence[str] = (),
    focus: str | None = None,
    due: date | datetime | None = None,
    description: str | None = None,
    business_status: str | None = None,
    version: FhirVersion,
) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "identifier": identifier,
        "basedOn": [ref(b) for b in based_on],
        "status": check_task_status(status),
        "businessStatus": (
            concept(t.Code(t.TASK_BUSINESS_STATUS_SYSTEM, business_status), text=business_status)
            if business_status
            else None
        ),
        "intent": "order",
        "priority": priority,
        "code": concept(code),
        "description": description,
        "focus": ref(focus) if focus else None,
        "for": ref(patient, expect="Patient"),
        "authoredOn": instant(authored_on) if authored_on else None,
        "requester": (
            ref(requester, expect=(*PRACTITIONER, "Organization", "Patient")) if requester else None
        ),
        "owner": (
            ref(owner, expect=(*PRACTITIONER, "Organization", "CareTeam", "HealthcareService"))
            if owner
            else None
        ),
        "restriction": {"period": period(None, due)} if due else None,
    }


def escalation_task(
    *,
    patient: str,
    outreach: str,
    owner: str,
    care_plan: str | None = None,
    requester: str | None = None,
    authored_on: datetime | None = None,
    due: date | datetime | None = None,
    version: FhirVersion = DEFAULT_VERSION,
) -> Task:
    """Escalation of unanswered outreach: Task (status requested, intent order, priority urgent,
    focus the CommunicationRequest, basedOn the CarePlan, owner the lead care manager or provider).
    The request itself is kept. Identifier: outreach-escalation | the request reference, so one
    request is escalated once however often the trigger is replayed."""
    ref(outreach, expect="CommunicationRequest")
    data = _task(
        identifier=identifiers("outreach-escalation", outreach),
        status="requested",
        code=t.TASK_OUTREACH_ESCALATION,
        patient=patient,
        owner=owner,
        requester=requester,
        priority="urgent",
        authored_on=authored_on,
        based_on=[_checked(care_plan, "CarePlan")] if care_plan else [],
        focus=outreach,
        due=due,
        description="Monthly outreach unanswered: escalated",
        version=version,
    )
    return finish(Task, data, version)


def work_task(
    *,
    key: str,
    patient: str,
    work: WorkType | t.Code,
    owner: str,
    due: date | datetime | None = None,
    care_plan: str | None = None,
    requester: str | None = None,
    status: str = "ready",
    business_status: str | None = None,
    priority: TaskPriority = "routine",
    authored_on: datetime | None = None,
    version: FhirVersion = DEFAULT_VERSION,
) -> Task:
    """A care-management work item (medication reconciliation, assessment, care-plan review, or
    any Code): Task (intent order, default status ready) with restriction.period.end = `due` and
    `business_status` (a local stage, e.g. "awaiting-pharmacy-list") as businessStatus. Change its
    status only through carecoord.caremodel.workflow.transition. Identifier: care-task | patient :
    work code : key."""
    code = work if isinstance(work, t.Code) else t.WORK_TASK_TYPES[work]
    data = _task(
        identifier=identifiers("care-task", ref_id(patient), code.code, key),
        status=status,
        code=code,
        patient=patient,
        owner=owner,
        requester=requester,
        priority=priority,
        authored_on=authored_on,
        based_on=[_checked(care_plan, "CarePlan")] if care_plan else [],
        due=due,
        description=code.display,
        business_status=business_status,
        version=version,
    )
    return finish(Task, data, version)


def clinical_review_task(
    *,
    key: str,
    patient: str,
    provider: str,
    question: str,
    urgent: bool = False,
    raised_by: str | None = None,
    care_plan: str | None = None,
    authored_on: datetime | None = None,
    due: datetime | None = None,
    version: FhirVersion = DEFAULT_VERSION,
) -> Task:
    """A clinical question the care manager must not answer, routed to the provider: Task (status
    requested, intent order, priority stat when urgent else routine, owner the provider,
    restriction.period.end = `due`, the response deadline). The question text (PHI) goes in
    Task.input (type question), never in description or logs; its urgency in Task.input (type
    urgency, routine or urgent). Identifier: clinical-review | key (the question event's id)."""
    if not question.strip():
        raise ValueError("question must not be empty")
    data = _task(
        identifier=identifiers("clinical-review", key),
        status="requested",
        code=t.TASK_CLINICAL_REVIEW,
        patient=patient,
        owner=_checked(provider, PRACTITIONER),
        requester=raised_by,
        priority="stat" if urgent else "routine",
        authored_on=authored_on,
        based_on=[_checked(care_plan, "CarePlan")] if care_plan else [],
        description="Clinical question for provider review",
        due=due,
        version=version,
    )
    data["input"] = [
        {"type": concept(t.TASK_INPUT_QUESTION), "valueString": question},
        {"type": concept(t.TASK_INPUT_URGENCY), "valueCode": "urgent" if urgent else "routine"},
    ]
    return finish(Task, data, version)


def charge_item(
    *,
    patient: str,
    program: Program,
    month: date,
    cpt: str,
    unit: int = 1,
    performer: str | None = None,
    entered: datetime | None = None,
    supporting: Sequence[str] = (),
    version: FhirVersion = DEFAULT_VERSION,
) -> ChargeItem:
    """A billing threshold reached: ChargeItem (status billable, code CPT, quantity 1, occurrence
    the calendar month). `unit` numbers repeated add-on codes (99439 #1, #2, ...) so the same
    minutes are never billed twice. Identifier: charge-item | patient : program : YYYY-MM : cpt :
    unit."""
    code = t.code_named(t.BILLING_CODES, cpt, "CPT code")
    if unit < 1:
        raise ValueError("unit counts from 1")
    first, last = month_period(month)
    data: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "identifier": identifiers(
            "charge-item", ref_id(patient), program, _month_key(first), cpt, str(unit)
        ),
        "status": "billable",
        "code": concept(code),
        "subject": ref(patient, expect="Patient"),
        "occurrencePeriod": period(first, last),
        "quantity": {"value": 1},
        "performer": [{"actor": ref(performer, expect=PRACTITIONER)}] if performer else [],
        "enteredDate": instant(entered) if entered else None,
        "supportingInformation": [ref(s) for s in supporting],
    }
    return finish(ChargeItem, data, version)
