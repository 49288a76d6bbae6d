"""Monthly outreach: the request per patient and period, its attempts, and escalation.

Handler "outreach":
- `carecoord.outreach.attempted` -> a Communication (identifier = the event id) based on the
  patient's outreach CommunicationRequest for the month of `attempted_at` (or the one named).
  answered: the request (and any alternative-channel request) is completed and open escalation
  Tasks are closed. no-answer / voicemail: counted; at `max_unanswered` in the period the request
  is escalated. wrong-number: a "verify contact details" Task. declined (or data
  `do_not_contact: true`): the request is revoked for the period, nothing is escalated.
- `carecoord.outreach.due` (from `carecoord sweep`): stage "due" creates the month's request and
  monthly work Tasks for an active CarePlan; stage "nearly-overdue" escalates a request still open
  close to the end of its month.

Escalation: ONE Task per request (identifier outreach-escalation | CommunicationRequest/<id>,
created conditionally, so a replay or the sweeper racing an attempt cannot make a second), an
alternative-channel request, and `carecoord.outreach.escalated` with an id derived from the same
key (so downstream can deduplicate however often it is triggered).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from fhir.resources.R4B.communicationrequest import CommunicationRequest
from fhir.resources.R4B.resource import Resource

from carecoord.caremodel import builders as care
from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import (
    add_create,
    business_identifier_json,
    identifier_search,
)
from carecoord.caremodel.identifiers import identifier_value as key_value
from carecoord.caremodel.workflow import FINAL, transition
from carecoord.core.catalog import (
    OutreachAttempted,
    OutreachDue,
    OutreachEscalated,
)
from carecoord.core.effects import Effects
from carecoord.core.handler import FhirReader, HandlerSpec
from carecoord.core.router import Delivery, Handlers
from carecoord.core.vocabulary import Channel
from carecoord.errors import HandlerError, MalformedEvent
from carecoord.fhir.batch_reads import declares_batch
from carecoord.fhir.capabilities import declares_revinclude
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.models import to_json
from carecoord.fhir.reading import element, field, items
from carecoord.handlers.care import patient_context
from carecoord.handlers.care.model import (
    OUTREACH_ATTEMPT_ID,
    OUTREACH_ESCALATION_ID,
    OUTREACH_REQUEST_ID,
    CareConfig,
    Month,
    as_date,
    build,
    codings,
    has_code,
    identifier_value,
    outreach_key,
    patient_of,
    ref_of,
    reference_str,
    references,
    version_of,
)
from carecoord.handlers.care.outreach_requests import (
    alternatives_of,
    group_key,
    monthly_for,
    patient_requests,
    request_work_task,
    requests_search,
)
from carecoord.handlers.care.patient_context import care_team_of, program_of
from carecoord.handlers.programs import care_tasks
from carecoord.handlers.programs.disenrolment import confirm_disenrolment, unreachable_review

log = logging.getLogger(__name__)

ESCALATED = OutreachEscalated.event_type
MEDIUM_CHANNEL = {code.code: channel for channel, code in t.CHANNEL_MEDIUM.items()}


handlers = Handlers(
    "outreach",
    config=CareConfig,
    settings=(
        "outreach_channel",
        "max_unanswered",
        "escalation_owner",
        "lead_care_manager",
        "supervisor",
        "pool",
        "alternative_channels",
        "monthly_tasks",
        "days_before_period_end",
        "unreachable_months",
    ),
    description="Monthly outreach requests, attempts, and escalation of unanswered outreach.",
)


# ---------------------------------------------------------------------------------------------
# Building and finding requests


def monthly_request(
    *,
    patient_id: str,
    program: str,
    month: Month,
    requester: str,
    care_plan: str,
    channel: Channel,
    authored: date,
) -> CommunicationRequest:
    """The month's outreach request. authoredOn always lies inside the month (the caseload count
    searches by it): the later of the month's first day and `authored`."""
    day = min(max(authored, month.start), month.end)
    return care.outreach_request(
        patient=f"Patient/{patient_id}",
        program=program,  # type: ignore[arg-type]  # validated by the catalog / CarePlan
        month=month.start,
        care_manager=requester,
        care_plan=care_plan,
        channel=channel,
        authored_on=datetime.combine(day, datetime.min.time(), UTC),
    )


# One search for an attempt: the requests, their attempts and their escalation Tasks.
_ATTEMPT_REVINCLUDES = ("Communication:based-on", "Task:focus")


def outreach_view(
    fhir: FhirReader, patient_id: str, month: Month
) -> tuple[list[Any], list[Any] | None, list[Any] | None]:
    """(requests, their Communications, the Tasks focused on them) in ONE search where the
    server declares both `_revinclude`s for CommunicationRequest (batched with the patient's
    active plans where it declares batch); else (requests, None, None) and the callers search
    for the others themselves."""
    if not declares_revinclude(fhir, "CommunicationRequest", *_ATTEMPT_REVINCLUDES):
        return patient_requests(fhir, patient_id, month), None, None
    if declares_batch(fhir):
        # The patient's active plans in the same round trip: an escalation needs the plan (and
        # its team: see patient_context.prefetch_with_plans); a batch costs no more round trips.
        patient_context.prefetch_with_plans(
            fhir, patient_id, [requests_search(patient_id, month, _ATTEMPT_REVINCLUDES)]
        )
    found = patient_requests(fhir, patient_id, month, revinclude=_ATTEMPT_REVINCLUDES)
    requests = [r for r in found if r.get_resource_type() == "CommunicationRequest"]
    comms = [r for r in found if r.get_resource_type() == "Communication"]
    tasks = [r for r in found if r.get_resource_type() == "Task"]
    return requests, comms, tasks


def _month_of_key(key: str | None) -> Month | None:
    """The month at the end of a monthly request key (<patient>:<program>:<YYYY-MM>)."""
    try:
        return Month.parse((key or "").rsplit(":", 1)[-1])
    except ValueError:
        return None


def _read(fhir: FhirReader, reference: str) -> Any | None:
    rtype, rid = reference.split("/", 1)
    try:
        return fhir.read(rtype, rid)
    except (FhirNotFound, FhirGone):
        return None


def _find_one(fhir: FhirReader, resource_type: str, kind: str, *parts: str) -> Any | None:
    system_value = identifier_search(kind, *parts)["identifier"]
    system, value = system_value.split("|", 1)
    for found in fhir.search(resource_type, [("identifier", system_value)]):
        if identifier_value(found, system) == value:
            return found
    return None


def escalation_for(
    fhir: FhirReader, request_ref: str, tasks: Sequence[Any] | None = None
) -> Any | None:
    """The escalation Task of a request, if it exists; among `tasks` when the caller already has
    every Task focused on the request (from `outreach_view`), else searched for."""
    if tasks is None:
        return _find_one(fhir, "Task", "outreach-escalation", request_ref)
    value = key_value(request_ref)
    for task in tasks:
        if (
            task.get_resource_type() == "Task"
            and identifier_value(task, OUTREACH_ESCALATION_ID) == value
        ):
            return task
    return None


def _channel_of(cr: Any) -> str | None:
    """The channel of a request: the medium's text (carecoord writes the channel there), else
    its ParticipationMode code (asked on every attempt: validating `medium` was 1.5 % of a drain
    worker's CPU, so a lean request's is read as JSON)."""
    mediums = [
        (field(m, "text"), [field(c, "code") for c in codings(m)])
        for m in items(element(cr, "medium"))
    ]
    for text, codes in mediums:
        if text in t.CHANNEL_MEDIUM:
            return str(text)
        for code in codes:
            if code in MEDIUM_CHANNEL:
                return MEDIUM_CHANNEL[code]
    return None


def plan_of(fhir: FhirReader, cr: Any) -> Any | None:
    """The CarePlan a request is based on (from the event's earlier plan search where
    `outreach_view` batched one, else read)."""
    for ref in references(cr, "basedOn"):
        if ref.startswith("CarePlan/"):
            return _read(fhir, ref)
    return None


# ---------------------------------------------------------------------------------------------
# Effects


def _set_status(cr: Any, status: str, reason: t.Code | None = None) -> Resource:
    data = to_json(cr)
    data["status"] = status
    if reason is not None:
        data["statusReason"] = reason.concept_json()
    return build("CommunicationRequest", data)


def _escalation_owner(config: CareConfig, provider: str | None) -> str | None:
    if config.escalation_owner == "provider":
        return provider or config.lead_care_manager or config.supervisor
    return config.lead_care_manager or provider or config.supervisor


def escalate(
    effects: Effects,
    fhir: FhirReader,
    config: CareConfig,
    cr: Any,
    *,
    reason: Literal["unanswered", "period-ending"],
    unanswered: int,
    at: datetime,
    tasks: Sequence[Any] | None = None,
) -> bool:
    """Add the escalation of `cr` (Task, alternative-channel request, event). Idempotent: nothing
    is added if the request is no longer active or already escalated. `tasks`: see
    `escalation_for`."""
    cr_ref = ref_of(cr)
    if cr.status != "active" or escalation_for(fhir, cr_ref, tasks) is not None:
        return False
    patient_id = patient_of(cr)
    key = identifier_value(cr, OUTREACH_REQUEST_ID)
    if patient_id is None or key is None:
        return False
    plan = plan_of(fhir, cr)
    plan_ref = ref_of(plan) if plan is not None else None
    _, provider = care_team_of(plan, fhir) if plan is not None else (None, None)
    owner = _escalation_owner(config, provider)
    if owner is None:
        raise HandlerError("no escalation owner: set lead_care_manager or supervisor", task=cr_ref)
    period_end = as_date(field(element(cr, "occurrencePeriod"), "end"))  # the catalog: a date
    task = care.escalation_task(
        patient=f"Patient/{patient_id}",
        outreach=cr_ref,
        owner=owner,
        care_plan=plan_ref,
        requester=reference_str(element(cr, "requester")),
        authored_on=at,
        due=at.date() + timedelta(days=2),
    )
    task_json = to_json(task)
    task_json["reasonCode"] = t.REASON_UNREACHABLE.concept_json()
    add_create(effects, build("Task", task_json))
    alternative = _alternative(config, cr, key, plan_ref, at)
    if alternative is not None:
        add_create(effects, alternative)
    effects.emit(
        OutreachEscalated(
            outreach=cr_ref,
            care_plan=plan_ref,
            owner=owner,
            reason=reason,
            unanswered_attempts=unanswered,
            period_end=str(period_end) if period_end else None,
            escalation=business_identifier_json("outreach-escalation", cr_ref),
            alternative_channel=_channel_of(alternative) if alternative is not None else None,
        ),
        f"Patient/{patient_id}",
        id=f"carecoord:outreach-escalated:{cr_ref}",
    )
    log.info(
        "outreach escalated",
        extra={"outreach": cr_ref, "reason": reason, "unanswered": unanswered},
    )
    return True


def _alternative(
    config: CareConfig, cr: Any, key: str, plan_ref: str | None, at: datetime
) -> Resource | None:
    """An alternative-channel request (the first configured channel other than the original)."""
    current = _channel_of(cr)
    channel = next((c for c in config.alternative_channels if c != current), None)
    requester = reference_str(cr.requester)
    patient_id = patient_of(cr)
    if channel is None or requester is None or patient_id is None or plan_ref is None:
        return None
    program = key.rsplit(":", 2)[-2]
    month = Month.of(at)
    base = to_json(
        monthly_request(
            patient_id=patient_id,
            program=program,
            month=month,
            requester=requester,
            care_plan=plan_ref,
            channel=channel,
            authored=at.date(),
        )
    )
    base["identifier"] = [business_identifier_json("outreach-alternative", key, channel)]
    base["groupIdentifier"] = {"system": OUTREACH_REQUEST_ID, "value": key}
    base["priority"] = "urgent"
    base["authoredOn"] = at.isoformat()
    return build("CommunicationRequest", base)


def _unanswered(
    fhir: FhirReader,
    cr_ref: str,
    current_id: str,
    current_counts: bool,
    communications: Sequence[Any] | None = None,
) -> int:
    """Distinct unanswered (no-answer / voicemail) attempts on a request, this one included.
    `communications`: every Communication based on the request, if the caller has them."""
    ids: set[str] = set()
    found: Sequence[Any] = (
        fhir.search("Communication", [("based-on", cr_ref)])
        if communications is None
        else communications
    )
    for comm in found:
        if comm.get_resource_type() != "Communication":
            continue
        if cr_ref not in references(comm, "basedOn"):
            continue
        if comm.status == "not-done" and has_code(
            element(comm, "statusReason"),
            t.COMMUNICATION_NOT_DONE_REASON_SYSTEM,
            "recipient-unavailable",
        ):
            ids.add(identifier_value(comm, OUTREACH_ATTEMPT_ID) or ref_of(comm))
    if current_counts:
        ids.add(current_id)
    return len(ids)


def _close_escalation(
    fhir: FhirReader,
    effects: Effects,
    cr_ref: str,
    at: datetime,
    tasks: Sequence[Any] | None = None,
) -> None:
    task = escalation_for(fhir, cr_ref, tasks)
    if task is None or task.status in FINAL:
        return
    target = "completed" if task.status == "in-progress" else "cancelled"
    closed = to_json(transition(task, target, reason="Patient reached by outreach", at=at))
    closed["businessStatus"] = t.REASON_CONTACT_MADE.concept_json()
    effects.update(build("Task", closed), version_of(task))


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@handlers.on(OutreachAttempted)
def handle_attempted(d: Delivery[OutreachAttempted, CareConfig]) -> Effects:
    at = _aware(d.data.attempted_at)
    month = Month.of(at)
    named = _read(d.fhir, d.data.outreach) if d.data.outreach else None
    if d.data.outreach and named is None:
        raise HandlerError("named outreach request not found", event_id=d.event.id)
    if named is not None:  # its requests are those of its own month (the key says which)
        month = (
            _month_of_key(group_key(named) or identifier_value(named, OUTREACH_REQUEST_ID)) or month
        )
    requests, comms, tasks = outreach_view(d.fhir, d.patient_id, month)
    main: Any | None
    if named is not None and group_key(named):
        main = next(
            (
                cr
                for cr in requests
                if identifier_value(cr, OUTREACH_REQUEST_ID) == group_key(named)
            ),
            None,
        )
    elif named is not None:
        main = named
    else:
        candidates = monthly_for(requests, month)
        main = candidates[0] if candidates else None
    target = named or main
    if target is None:
        raise HandlerError(
            "no outreach request for this patient and period",
            event_id=d.event.id,
            period=month.label,
        )
    try:
        communication = care.outreach_attempt(
            key=d.event.id,
            patient=d.patient,
            outreach=ref_of(target),
            channel=d.data.channel,
            outcome=d.data.outcome,
            attempted_at=at,
            by=d.data.by,
        )
    except ValueError as exc:
        raise MalformedEvent(
            "invalid data: 'by' must be a Practitioner/PractitionerRole/Organization reference",
            event_id=d.event.id,
            event_type=d.event.type,
        ) from exc
    effects = Effects()
    add_create(effects, communication)
    if main is None:
        return effects
    main_ref = ref_of(main)
    alternatives = alternatives_of(requests, main)
    extra = d.data.model_extra or {}
    if d.data.outcome == "answered":
        for cr in [main, *alternatives]:
            if cr.status == "active":
                effects.update(_set_status(cr, "completed"), version_of(cr))
        _close_escalation(d.fhir, effects, main_ref, at, tasks)
    elif d.data.outcome == "declined" or extra.get("do_not_contact") is True:
        for cr in [main, *alternatives]:
            if cr.status == "active":
                effects.update(
                    _set_status(cr, "revoked", t.NOT_DONE_PATIENT_OBJECTION), version_of(cr)
                )
        if d.data.outcome == "declined":  # program rules: not just this month
            confirm_disenrolment(effects, main, d.patient_id, at)
    elif d.data.outcome == "wrong-number":
        _verify_contact(effects, main, d.patient_id, at)
    else:  # no-answer, voicemail
        # Compared with the stored attempts' identifier values, so cleaned and hashed the same way.
        count = _unanswered(
            d.fhir, main_ref, key_value(d.event.id), current_counts=True, communications=comms
        )
        if count >= d.config.max_unanswered:
            escalate(
                effects,
                d.fhir,
                d.config,
                main,
                reason="unanswered",
                unanswered=count,
                at=at,
                tasks=tasks,
            )
    log.info(
        "outreach attempt recorded",
        extra={"outreach": main_ref, "outcome": d.data.outcome},
    )
    return effects


def _verify_contact(effects: Effects, cr: Any, patient_id: str, at: datetime) -> None:
    request_work_task(effects, cr, patient_id, at, t.TASK_VERIFY_CONTACT, 2)


@handlers.on(OutreachDue)
def handle_due(d: Delivery[OutreachDue, CareConfig]) -> Effects:
    month = Month.of(d.data.period_start)
    effects = Effects()
    if d.data.stage == "nearly-overdue":
        if d.data.outreach:
            cr = _read(d.fhir, d.data.outreach)
            targets = [cr] if cr is not None else []
        else:
            targets = monthly_for(patient_requests(d.fhir, d.patient_id, month), month)
        at = (
            _aware(d.event.time)
            if d.event.time
            else datetime.combine(d.data.period_end, datetime.min.time(), UTC)
        )
        for cr in targets:
            key = identifier_value(cr, OUTREACH_REQUEST_ID) or ""
            if key.endswith(f":{month.label}"):
                count = _unanswered(d.fhir, ref_of(cr), d.event.id, current_counts=False)
                escalate(
                    effects, d.fhir, d.config, cr, reason="period-ending", unanswered=count, at=at
                )
        return effects
    plans: list[Any]
    if d.data.care_plan:
        plan = _read(d.fhir, d.data.care_plan)
        plans = [plan] if plan is not None else []
    else:
        plans = active_plans(d.fhir, d.patient_id)
    for plan in plans:
        _ensure_monthly(effects, d.fhir, d.config, plan, d.patient_id, month)
    return effects


def active_plans(fhir: FhirReader, patient_id: str) -> list[Any]:
    """The patient's active carecoord CarePlans (carecoord.handlers.care.patient_context)."""
    return patient_context.active_plans(fhir, patient_id, managed=True)


def _ensure_monthly(
    effects: Effects,
    fhir: FhirReader,
    config: CareConfig,
    plan: Any,
    patient_id: str,
    month: Month,
) -> None:
    """The month's outreach request and monthly work Tasks of an active plan, if missing."""
    program = program_of(plan)
    start = plan.period.start if plan.period else None
    if plan.status != "active" or program is None or patient_of(plan) != patient_id:
        return
    start_day = as_date(start)
    if start_day is None or Month.of(start_day) > month:
        return
    key = outreach_key(patient_id, program, month)
    if _find_one(
        fhir, "CommunicationRequest", "outreach-request", patient_id, program, month.label
    ):
        return
    manager, provider = care_team_of(plan, fhir)
    requester = manager or provider
    if requester is None:
        return
    plan_ref = ref_of(plan)
    add_create(
        effects,
        monthly_request(
            patient_id=patient_id,
            program=program,
            month=month,
            requester=requester,
            care_plan=plan_ref,
            channel=config.outreach_channel,
            authored=month.start,
        ),
    )
    owner = manager or config.pool or config.supervisor or provider
    if owner is not None:
        unreachable_review(effects, fhir, config, plan, patient_id, program, month, owner)
        for task in care_tasks.monthly_tasks(
            config,
            patient_id=patient_id,
            program=program,
            month=month,
            owner=owner,
            care_plan=plan_ref,
            requester=provider,
            authored=month.start,
        ):
            add_create(effects, task)
    log.info("monthly outreach created", extra={"care_plan": plan_ref, "request_key": key})


HANDLERS: list[HandlerSpec] = [handlers.spec]
