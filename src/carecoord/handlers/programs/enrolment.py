"""Enrolment in a care-management program.

Handler "enrolment": `carecoord.patient.enrolled` -> in ONE transaction
- CarePlan (intent plan, category assess-plan + program, period from `start`, addresses the
  Conditions, activity.reference -> the month's outreach request and work Tasks; no inline detail)
  with its CareTeam (care manager as care coordinator, provider as primary care physician), a
  *standalone* US Core CareTeam with a business identifier, so `CareTeam?patient=` finds the
  care manager (on servers that cannot search CareTeam by identifier the client writes it with
  PUT to an id derived from the identifier: still replay-safe);
- the outreach CommunicationRequest for the month of `start`, and the program's work Tasks;
- without a named care manager, the one with most room is assigned (programs/caseload.py);
  when all are full, an "assign a care manager" Task goes to the pool / supervisor instead.
A replay (the patient already has an active CarePlan for the program) changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from carecoord.caremodel import builders as care
from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import add_create, create_for
from carecoord.core.catalog import PatientEnrolled
from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import HandlerSpec
from carecoord.core.router import Delivery, Handlers
from carecoord.errors import MalformedEvent
from carecoord.fhir.batch_reads import existence_probe, search_together
from carecoord.fhir.models import to_json
from carecoord.handlers.care.model import CareConfig, Month, build
from carecoord.handlers.care.patient_context import care_team_of, plan_searches, program_of
from carecoord.handlers.programs import care_tasks
from carecoord.handlers.programs.caseload import CASELOAD_SETTINGS, Assignment, assign_care_manager
from carecoord.handlers.programs.consent import consent_resource
from carecoord.handlers.programs.outreach import active_plans, monthly_request

log = logging.getLogger(__name__)

CONTAINED_TEAM_ID = "care-team"

handlers = Handlers(
    "enrolment",
    config=CareConfig,
    settings=(
        *CASELOAD_SETTINGS,
        "outreach_channel",
        "enrolment_tasks",
        "monthly_tasks",
        "task_due_days",
        "consent_required",
        "consent_due_days",
    ),
    description="CarePlan + CareTeam per program enrolment, caseload assignment, first "
    "month's outreach request and work Tasks.",
)


@handlers.on(PatientEnrolled)
def handle_enrolled(d: Delivery[PatientEnrolled, CareConfig]) -> Effects:
    bad = [i for i, c in enumerate(d.data.conditions) if not _is_condition_ref(c)]
    if bad:
        raise MalformedEvent(
            f"invalid data: conditions{bad} must be 'Condition/<id>' references",
            event_id=d.event.id,
            event_type=d.event.type,
        )
    # One round trip for the reads: the plans, and (where the server cannot search CareTeam by
    # identifier, so the team goes out as PUT) whether the team's id is free.
    team = create_for(build("CareTeam", _team_json(d.data, d.patient, None)))
    probe = existence_probe(d.fhir, team)
    search_together(d.fhir, plan_searches(d.fhir, d.patient_id) + ([probe] if probe else []))
    plans = active_plans(d.fhir, d.patient_id)
    if any(program_of(p) == d.data.program for p in plans):
        log.info("already enrolled; nothing to do")
        return Effects()
    month = Month.of(d.data.start)
    current = [m for m in (care_team_of(p)[0] for p in plans) if m]
    assignment = assign_care_manager(
        d.fhir, d.config, d.patient_id, month, named=d.data.care_manager, current=current
    )
    effects = build_enrolment(d.event, d.data, d.patient_id, d.config, assignment)
    log.info(
        "patient enrolled",
        extra={
            "program": d.data.program,
            "care_manager": assignment.care_manager,
            "assignment": assignment.reason,
        },
    )
    return effects


def _is_condition_ref(value: str) -> bool:
    rtype, _, rid = value.partition("/")
    return rtype == "Condition" and bool(rid) and "/" not in rid


def build_enrolment(
    event: CloudEvent,
    data: PatientEnrolled,
    patient_id: str,
    config: CareConfig,
    assignment: Assignment,
) -> Effects:
    """The effects of one enrolment (pure)."""
    effects = Effects()
    manager = assignment.care_manager
    month = Month.of(data.start)
    patient = f"Patient/{patient_id}"
    plan_urn = _plan_urn(patient_id, data)
    requester = manager or data.provider
    request = monthly_request(
        patient_id=patient_id,
        program=data.program,
        month=month,
        requester=requester,
        care_plan=plan_urn,
        channel=config.outreach_channel,
        authored=data.start,
    )
    owner = manager or config.pool or config.supervisor or data.provider
    tasks = [
        *care_tasks.enrolment_tasks(
            config,
            patient_id=patient_id,
            program=data.program,
            start=data.start,
            owner=owner,
            care_plan=plan_urn,
            requester=data.provider,
        ),
        *care_tasks.monthly_tasks(
            config,
            patient_id=patient_id,
            program=data.program,
            month=month,
            owner=owner,
            care_plan=plan_urn,
            requester=data.provider,
            authored=data.start,
        ),
    ]
    activity_refs = [add_create(effects, request)]
    activity_refs += [add_create(effects, task) for task in tasks]
    # Program rules: without consent a program that requires it is pending (CarePlan draft)
    # until carecoord.consent.recorded; the care manager gets an "obtain consent" Task.
    pending = data.program in config.consent_required and data.consent is None
    if pending:
        activity_refs.append(
            add_create(effects, _consent_task(config, data, patient_id, plan_urn, owner))
        )
    elif data.consent is not None:
        add_create(
            effects,
            consent_resource(
                patient_id=patient_id,
                program=data.program,
                day=data.consent.date,
                method=data.consent.method,
                recorded_by=data.consent.recorded_by,
            ),
        )
    plan = care.care_plan(
        patient=patient,
        program=data.program,
        start=data.start,
        addresses=data.conditions,
        activities=activity_refs,
        author=manager,
        status="draft" if pending else "active",
    )
    plan_json = to_json(plan)
    team_ref = add_create(effects, build("CareTeam", _team_json(data, patient, manager)))
    plan_json["careTeam"] = [{"reference": team_ref}]
    add_create(effects, build("CarePlan", plan_json))  # its urn is plan_urn (same identifier)
    if manager is None:
        add_create(effects, _assignment_task(config, data, patient_id, plan_urn))
    return effects


def _plan_urn(patient_id: str, data: PatientEnrolled) -> str:
    probe = care.care_plan(patient=f"Patient/{patient_id}", program=data.program, start=data.start)
    return create_for(probe).full_url


def _team_json(data: PatientEnrolled, patient: str, manager: str | None) -> dict[str, Any]:
    team = to_json(
        care.care_team(
            patient=patient,
            program=data.program,
            start=data.start,
            care_manager=manager or data.provider,
            provider=data.provider,
        )
    )
    if manager is None:  # nobody has room yet: the team is the provider until one is assigned
        team["participant"] = [
            p
            for p in team["participant"]
            if not any(t.ROLE_CARE_COORDINATOR.matches(c) for r in p["role"] for c in r["coding"])
        ]
    return team


def _assignment_task(
    config: CareConfig, data: PatientEnrolled, patient_id: str, plan_urn: str
) -> Any:
    owner = config.pool or config.supervisor or data.provider
    task = care.work_task(
        key=f"{data.program}:{data.start.isoformat()}",
        patient=f"Patient/{patient_id}",
        work=t.TASK_ASSIGN_CARE_MANAGER,
        owner=owner,
        due=data.start,
        care_plan=plan_urn,
        requester=data.provider,
        status="requested",
        authored_on=datetime.combine(data.start, datetime.min.time(), UTC),
    )
    task_json = to_json(task)
    task_json["focus"] = {"reference": plan_urn}
    task_json["statusReason"] = t.REASON_NO_CAPACITY.concept_json(
        "No care manager has room this month"
    )
    task_json["performerType"] = [t.ROLE_CARE_COORDINATOR.concept_json()]
    return build("Task", task_json)


def _consent_task(
    config: CareConfig, data: PatientEnrolled, patient_id: str, plan_urn: str, owner: str
) -> Any:
    return care.work_task(
        key=f"{data.program}:{data.start.isoformat()}",
        patient=f"Patient/{patient_id}",
        work=t.TASK_OBTAIN_CONSENT,
        owner=owner,
        due=data.start + timedelta(days=config.consent_due_days),
        care_plan=plan_urn,
        requester=data.provider,
        authored_on=datetime.combine(data.start, datetime.min.time(), UTC),
    )


HANDLERS: list[HandlerSpec] = [handlers.spec]
