"""Caseload reassignment: move a patient away from a care manager who left or is over capacity.

Handler "reassignment": `carecoord.care-manager.reassign` (data care_manager, reason "left" or
"over-capacity", month "YYYY-MM"; subject the one patient to move) -> in ONE transaction, the
patient's work follows them to the care manager with the most room (programs/caseload.py,
the departing one excluded; one who already looks after the patient in another program keeps
them):
- the CareTeam (standalone, referenced by CarePlan.careTeam; contained in plans written before
  carecoord wrote standalone CareTeams) of every active CarePlan that names the departing care
  manager (and the plan's author, if it is them);
- every open outreach CommunicationRequest (monthly and alternative channel) they requested, so
  the patient counts in the new care manager's caseload from now on;
- every open Task of the patient they own (work items, escalations, contact checks).
Every change is a versioned update; `carecoord.care-manager.reassigned` is emitted. When nobody
has room, the patient stays where they are and ONE "assign-care-manager" Task per patient, care
manager and month goes to the pool / supervisor (conditional create); the next sweep re-sends
the trigger, so the patient moves on their own as soon as someone has room.

Replay-safe: a second run finds nothing of the patient left with the departing care manager and
does nothing. An "over-capacity" trigger is re-checked against the month's caseload, so a stale
one (the care manager is no longer over capacity) changes nothing.

`due_reassignments` is the sweeper's side: which patients to move, per configured care manager
marked `active: false` (all their patients) or over `capacity` this month (the most recently
enrolled excess patients).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from carecoord.caremodel import builders as care
from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import add_create
from carecoord.caremodel.workflow import FINAL
from carecoord.core.catalog import CareManagerReassign, CareManagerReassigned
from carecoord.core.effects import Effects
from carecoord.core.handler import FhirReader, HandlerSpec
from carecoord.core.router import Delivery, Handlers
from carecoord.errors import HandlerError
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.models import to_json
from carecoord.handlers.care.model import (
    CARE_PLAN_ID,
    CareConfig,
    Month,
    as_date,
    build,
    identifier_value,
    patient_of,
    ref_of,
    reference_str,
    version_of,
)
from carecoord.handlers.care.old_type_names import old_type_names
from carecoord.handlers.care.outreach_requests import patient_requests
from carecoord.handlers.care.patient_context import care_team_of
from carecoord.handlers.programs.caseload import (
    CASELOAD_SETTINGS,
    assign_care_manager,
    caseload_patients,
)
from carecoord.handlers.programs.outreach import active_plans

log = logging.getLogger(__name__)

Reason = Literal["left", "over-capacity"]

OPEN_REQUEST_STATUSES = frozenset({"draft", "active", "on-hold"})


# ---------------------------------------------------------------------------------------------
# What of a patient a care manager holds


@dataclass(frozen=True)
class Holdings:
    """The patient's active CarePlans whose care team names the care manager, the open outreach
    requests they requested, and the open Tasks they own."""

    plans: list[Any] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    tasks: list[Any] = field(default_factory=list)
    teams: list[Any] = field(default_factory=list)  # standalone CareTeams of `plans`

    def __bool__(self) -> bool:
        return bool(self.plans or self.requests or self.tasks)


def holdings(
    fhir: FhirReader, patient_id: str, care_manager: str, plans: list[Any] | None = None
) -> Holdings:
    """`plans`: the patient's active CarePlans, if already read."""
    plans = [
        p
        for p in (active_plans(fhir, patient_id) if plans is None else plans)
        if care_team_of(p, fhir)[0] == care_manager
    ]
    teams = [team for p in plans for team in _standalone_teams(fhir, p)]
    requests = [
        cr
        for cr in patient_requests(fhir, patient_id)
        if cr.status in OPEN_REQUEST_STATUSES and reference_str(cr.requester) == care_manager
    ]
    found: list[Any] = fhir.search("Task", [("patient", f"Patient/{patient_id}")])
    tasks = [
        task
        for task in found
        if patient_of(task) == patient_id
        and task.status not in FINAL
        and reference_str(task.owner) == care_manager
    ]
    return Holdings(plans, requests, tasks, teams)


def _standalone_teams(fhir: FhirReader, plan: Any) -> list[Any]:
    out = []
    for link in getattr(plan, "careTeam", None) or []:
        reference = reference_str(link)
        if reference and reference.startswith("CareTeam/"):
            try:
                out.append(fhir.read("CareTeam", reference.removeprefix("CareTeam/")))
            except (FhirNotFound, FhirGone):
                continue
    return out


# ---------------------------------------------------------------------------------------------
# Handler


handlers = Handlers(
    "reassignment",
    config=CareConfig,
    settings=CASELOAD_SETTINGS,
    description="Moves a patient's care team, outreach and Tasks away from a care manager "
    "who left or is over capacity.",
)


@handlers.on(CareManagerReassign)
def handle_reassign(d: Delivery[CareManagerReassign, CareConfig]) -> Effects:
    at = d.aware_time()
    month = Month.parse(d.data.month) if d.data.month else Month.of(at)
    departing = d.data.care_manager
    plans = active_plans(d.fhir, d.patient_id)
    held = holdings(d.fhir, d.patient_id, departing, plans)
    if not held:
        log.info("nothing left with that care manager")
        return Effects()
    if d.data.reason == "over-capacity" and not _still_over_capacity(
        d.fhir, d.config, departing, d.patient_id, month
    ):
        log.info("care manager no longer over capacity")
        return Effects()
    others = [m for m in (care_team_of(p, d.fhir)[0] for p in plans) if m]
    assignment = assign_care_manager(
        d.fhir, d.config, d.patient_id, month, current=others, exclude=[departing]
    )
    log.info(
        "reassigning patient",
        extra={
            "reason": d.data.reason,
            "from": departing,
            "to": assignment.care_manager,
            "assignment": assignment.reason,
        },
    )
    if assignment.care_manager is None:
        return _needs_assignment(d.config, held, d.patient_id, departing, month, at)
    effects = move(held, departing, assignment.care_manager, at)
    effects.emit(
        CareManagerReassigned(
            care_manager=assignment.care_manager,
            previous=departing,
            reason=d.data.reason,
            assignment=assignment.reason,
            month=month.label,
            care_plans=[ref_of(p) for p in held.plans],
            outreach=[ref_of(cr) for cr in held.requests],
            tasks=[ref_of(task) for task in held.tasks],
        ),
        d.patient,
        id=f"carecoord:care-manager-reassigned:Patient/{d.patient_id}:{departing}:{month.label}",
    )
    return effects


def _still_over_capacity(
    fhir: FhirReader, config: CareConfig, care_manager: str, patient_id: str, month: Month
) -> bool:
    patients = caseload_patients(fhir, care_manager, month)
    return patient_id in patients and len(patients) > config.capacity_of(care_manager)


def move(held: Holdings, departing: str, new: str, at: datetime) -> Effects:
    """Versioned updates handing everything in `held` from `departing` to `new` (pure)."""
    effects = Effects()
    for plan in held.plans:
        effects.update(_plan_with(plan, departing, new, at.date()), version_of(plan))
    for team in held.teams:
        data = to_json(team)
        if _replace_coordinator(data, departing, new, at.date()):
            effects.update(build("CareTeam", data), version_of(team))
    for cr in held.requests:
        data = to_json(cr)
        data["requester"] = {"reference": new}
        effects.update(build("CommunicationRequest", data), version_of(cr))
    for task in held.tasks:
        data = to_json(task)
        data["owner"] = {"reference": new}
        effects.update(build("Task", data), version_of(task))
    return effects


def _plan_with(plan: Any, departing: str, new: str, since: date) -> Any:
    """The plan with `new` as care coordinator of its contained CareTeam (and author) instead of
    `departing`. The participant is replaced, not ended, because readers take the first care
    coordinator they find; the plan's version history keeps who it was."""
    data = to_json(plan)
    for res in data.get("contained", []):
        if res.get("resourceType") == "CareTeam":
            _replace_coordinator(res, departing, new, since)
    if (data.get("author") or {}).get("reference") == departing:
        data["author"] = {"reference": new}
    return build("CarePlan", data)


def _replace_coordinator(team: dict[str, Any], departing: str, new: str, since: date) -> bool:
    changed = False
    for part in team.get("participant", []):
        roles = part.get("role", [])
        roles = roles if isinstance(roles, list) else [roles]
        coordinator = any(
            t.ROLE_CARE_COORDINATOR.matches(c) for r in roles for c in r.get("coding", [])
        )
        if coordinator and (part.get("member") or {}).get("reference") == departing:
            part["member"] = {"reference": new}
            part["period"] = {"start": since.isoformat()}
            changed = True
    return changed


def _needs_assignment(
    config: CareConfig,
    held: Holdings,
    patient_id: str,
    departing: str,
    month: Month,
    at: datetime,
) -> Effects:
    """Nobody has room: one "assign-care-manager" Task (like enrolment's when all are full) to
    the pool / supervisor, per patient, departing care manager and month."""
    plan = min(held.plans, key=lambda p: str(p.id)) if held.plans else None
    plan_ref = ref_of(plan) if plan is not None else None
    provider = care_team_of(plan)[1] if plan is not None else None
    for team in held.teams if provider is None else []:
        for part in team.participant or []:
            if any(
                t.ROLE_PRIMARY_CARE_PHYSICIAN.matches(c)
                for r in part.role or []
                for c in r.coding or []
            ):
                provider = provider or reference_str(part.member)
    owner = config.pool or config.supervisor or provider
    if owner is None:
        raise HandlerError(
            "nobody has room and no pool, supervisor or provider to assign a care manager",
            care_manager=departing,
        )
    task = care.work_task(
        key=f"reassign:{departing.removeprefix('Practitioner/')}:{month.label}",
        patient=f"Patient/{patient_id}",
        work=t.TASK_ASSIGN_CARE_MANAGER,
        owner=owner,
        due=at.date(),
        care_plan=plan_ref,
        requester=provider,
        status="requested",
        authored_on=at,
    )
    task_json = to_json(task)
    if plan_ref is not None:
        task_json["focus"] = {"reference": plan_ref}
    task_json["statusReason"] = t.REASON_NO_CAPACITY.concept_json(
        "No care manager has room this month"
    )
    task_json["reasonCode"] = t.REASON_CARE_MANAGER_CHANGED.concept_json()
    task_json["performerType"] = [t.ROLE_CARE_COORDINATOR.concept_json()]
    effects = Effects()
    add_create(effects, build("Task", task_json))
    return effects


# ---------------------------------------------------------------------------------------------
# Sweeper side


@dataclass(frozen=True)
class DueReassignment:
    patient_id: str
    care_manager: str
    reason: Reason


def due_reassignments(fhir: FhirReader, config: CareConfig, month: Month) -> list[DueReassignment]:
    """Patients to move away from configured care managers in `month`: every patient of one
    marked inactive (this month's caseload, plus active CarePlans naming them, so a patient whose
    monthly request is not created yet is moved too), and the most recently enrolled patients
    beyond an active one's capacity. Deterministic order."""
    plans: list[Any] | None = None
    due: list[DueReassignment] = []
    for cm in config.care_managers:
        patients = caseload_patients(fhir, cm.reference, month)
        excess = len(patients) - config.capacity_of(cm.reference)
        if cm.active and excess <= 0:
            continue
        if plans is None:
            plans = _all_active_plans(fhir)
        enrolled = _enrolled_with(plans, cm.reference)
        if not cm.active:
            affected = sorted(patients | set(enrolled))
            reason: Reason = "left"
        else:
            latest_first = sorted(
                patients, key=lambda p: (enrolled.get(p, date.min), p), reverse=True
            )
            affected = sorted(latest_first[:excess])
            reason = "over-capacity"
        due += [DueReassignment(p, cm.reference, reason) for p in affected]
    return due


def _all_active_plans(fhir: FhirReader) -> list[Any]:
    found: list[Any] = fhir.search(
        "CarePlan", [("identifier", f"{CARE_PLAN_ID}|"), ("status", "active")]
    )
    return [p for p in found if p.status == "active" and identifier_value(p, CARE_PLAN_ID)]


def _enrolled_with(plans: list[Any], care_manager: str) -> dict[str, date]:
    """Patient id -> when they were first enrolled in a plan `care_manager` looks after."""
    out: dict[str, date] = {}
    for plan in plans:
        patient_id = patient_of(plan)
        if patient_id is None or care_team_of(plan)[0] != care_manager:
            continue
        start = (as_date(plan.period.start) if plan.period else None) or date.min
        out[patient_id] = min(out.get(patient_id, start), start)
    return out


HANDLERS: list[HandlerSpec] = [handlers.spec]

__getattr__ = old_type_names(
    __name__, REASSIGN=CareManagerReassign, REASSIGNED=CareManagerReassigned
)
