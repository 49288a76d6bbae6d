"""Closed-loop community referrals (HL7 Gravity SDOH Clinical Care IG).

carecoord.sdoh.need-identified -> Condition (SDOH health concern) + Goal, then:
- no consent to contact: nothing goes to an organisation; a draft ServiceRequest and a Task for
  the care manager (manual-referral, businessStatus no-consent-to-contact);
- else the directory is ranked (carecoord.handlers.referrals.ranking) and the best match gets a
  ServiceRequest (performer its Organization) + Task(fulfill, owner the Organization, input the
  HealthcareService and attempt number 1); emits carecoord.referral.created;
- no match: a manual-referral Task (businessStatus no-directory-match); emits
  carecoord.referral.unmatched.
The Condition, Goal and ServiceRequest join the patient's active CarePlan (addresses, goal,
activity).

carecoord.referral.status-changed moves the Task through the FHIR workflow state machine, with
the Gravity roles of the IG's status table (who may set each status; received and ready are not
referral statuses), then:
- rejected / failed / cancelled by the organisation (of the latest attempt): the next candidate
  not yet tried (the tried ones are the HealthcareServices of the ServiceRequest's earlier Tasks)
  gets Task attempt n+1 and the ServiceRequest's performer; none left -> manual-referral Task +
  carecoord.referral.unmatched;
- completed: ServiceRequest completed, the Task's resulting activities (Task.output) as the
  CarePlan activity's outcome, and a review Task for the care manager (the Goal is theirs to
  judge, never marked achieved here);
- cancelled by the requester: ServiceRequest revoked. A cancellation whose event does not say who
  made it (`set_by` absent, e.g. from a FHIR notification) is carecoord's own only where its
  record says so: the Task is cancelled on the server and the ServiceRequest revoked, which
  carecoord writes in the same transaction as each of its cancellations (`canceller`); any other
  is the organisation's and the next candidate is referred.
The requester is the care manager's PractitionerRole at the configured practice Organization
(carecoord.handlers.referrals.outcome.requester_for), else the configured `requester`. The service
refuses to start when neither `organization` nor a PractitionerRole/Organization `requester` is
set (`requester_problem`): that is a setting, not something to find out per event.

Every create is conditional on a deterministic identifier (the need event id, the ServiceRequest
key + attempt number), so replaying either event creates nothing new; emitted ids derive from the
triggering event id. Logs carry ids only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from fhir.resources.R4B.resource import Resource
from pydantic import Field

from carecoord.caremodel import terminology as t
from carecoord.caremodel.builders import work_task
from carecoord.caremodel.identifiers import (
    add_create,
    carecoord_identifier,
    create_for,
    identifier_search,
    identifier_system,
    identifier_value,
)
from carecoord.caremodel.profiles import PERTAINS_TO_GOAL
from carecoord.caremodel.workflow import REFERRAL_TASK_STATUSES, SET_BY, Actor, transition
from carecoord.core.catalog import (
    ReferralCreated,
    ReferralStatusChanged,
    ReferralUnmatched,
    SdohNeedIdentified,
)
from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.core.router import Delivery, Handlers
from carecoord.errors import HandlerError, InvalidTransition, MalformedEvent
from carecoord.fhir.batch_reads import Search, declares_batch, existence_probe
from carecoord.fhir.bundles import version_of
from carecoord.fhir.capabilities import declares_include
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.models import revised, to_json
from carecoord.handlers.care.event_ids import derived_id
from carecoord.handlers.care.model import referring
from carecoord.handlers.care.old_type_names import old_type_names
from carecoord.handlers.care.patient_context import (
    active_care_plan,
    patient_age,
    patient_team,
    prefetch_with_plans,
)
from carecoord.handlers.referrals.builders import (
    referral_service_request,
    referral_task,
    sdoh_condition,
    sdoh_domain,
    sdoh_goal,
)
from carecoord.handlers.referrals.consent import consent_organization, referral_consents
from carecoord.handlers.referrals.outcome import (
    Enrollment,
    enrollment_statuses,
    outcome_review_task,
    requester_for,
    resulting_activities,
)
from carecoord.handlers.referrals.ranking import Candidate, ReferralCriteria, rank

log = logging.getLogger(__name__)

REFERRAL_ID = identifier_system("referral")
REFERRAL_TASK_ID = identifier_system("referral-task")
CRITERIA_EXTENSION = f"{t.CARECOORD_BASE}/StructureDefinition/referral-criteria"

Step = Literal["next-candidate", "complete", "revoke", "none"]


class ReferralConfig(HandlerConfig):
    """Configuration of the "referrals" handler."""

    config_name: ClassVar[str] = "referrals"

    # Requester of referrals (and owner of manual-referral Tasks) when the patient has no active
    # CareTeam with a care coordinator: "Practitioner/x", "PractitionerRole/x" or "Organization/x".
    requester: str | None = Field(
        default=None, pattern=r"^(Practitioner|PractitionerRole|Organization)/[A-Za-z0-9\-.]{1,64}$"
    )
    # How many organisations are tried before the referral becomes a manual one.
    max_attempts: int = Field(default=5, ge=1)
    # The practice Organization the care managers work for: a referral is requested by the care
    # manager's PractitionerRole there (found, or created idempotently), else by it.
    organization: str | None = Field(default=None, pattern=r"^Organization/[A-Za-z0-9\-.]{1,64}$")
    # How the care manager's PractitionerRole is reached (US Core pd-1 needs a telecom): this
    # phone number, else the practice Organization's telecom; with neither, the Organization
    # itself requests the referral.
    practice_phone: str | None = Field(default=None, min_length=3, max_length=40)


# ---------------------------------------------------------------------------------------------
# Pure decisions


def step_after(status: str, by: Actor | None = None) -> Step:
    """What the loop does after the referral Task reached `status` (set `by` whom). A
    cancellation by the receiving organisation closes like a rejection (Gravity: either side may
    cancel); the requester's cancellation revokes the ServiceRequest."""
    if status in ("rejected", "failed"):
        return "next-candidate"
    if status == "completed":
        return "complete"
    if status == "cancelled":
        return "next-candidate" if by == "owner" else "revoke"
    return "none"


def actor_of(status: str, by: Actor | None) -> Actor:
    """Who set `status`: `by` when the event says so, else the side the IG lets set it (for
    cancelled, which either side sets, see `canceller`)."""
    if by is not None:
        return by
    return "owner" if SET_BY.get(status) == frozenset({"owner"}) else "requester"


def canceller(task_status: str | None, sr_status: str | None) -> Actor:
    """Who cancelled a referral Task when the event does not say. SDOHCC's status table sets
    cancelled by the "Requester or Referral Target" (HL7/fhir-sdoh-clinicalcare @6604b7a
    input/pagecontent/StructureDefinition-SDOHCC-TaskForReferralManagement-intro.md).
    carecoord is the requester and knows its own cancellations: it writes every one of them in
    the same transaction as the ServiceRequest's `revoked` (`_close_request`). So a Task already
    cancelled on the server whose ServiceRequest is revoked was cancelled by carecoord; any
    other cancellation (the Task still open on the server, or cancelled with the referral still
    active) is the responder's."""
    if task_status == "cancelled" and sr_status == "revoked":
        return "requester"
    return "owner"


DEFAULT_REASONS = {
    "rejected": "Rejected by the receiving organisation (no reason given)",
    "failed": "Reported failed by the receiving organisation (no reason given)",
    "on-hold": "Put on hold by the receiving organisation (no reason given)",
    "cancelled": "Cancelled (no reason given)",
}


@dataclass(frozen=True)
class Attempt:
    """One referral Task of a ServiceRequest."""

    task: Resource
    number: int
    service: str | None  # "HealthcareService/<id>"
    organization: str | None

    @property
    def reference(self) -> str:
        return f"Task/{self.task.id}"


def attempt_of(task: Resource) -> Attempt | None:
    """Read attempt number and HealthcareService from a referral Task's inputs."""
    found = carecoord_identifier(task)
    if found is None or found[0] != REFERRAL_TASK_ID:
        return None
    number = 0
    service: str | None = None
    for item in getattr(task, "input", None) or []:
        if t.concept_has(item.type, t.TASK_INPUT_ATTEMPT) and item.valueInteger is not None:
            number = int(item.valueInteger)
        if t.concept_has(item.type, t.TASK_INPUT_HEALTHCARE_SERVICE) and item.valueReference:
            service = item.valueReference.reference
    owner = getattr(getattr(task, "owner", None), "reference", None)
    return Attempt(task, number, service, owner)


def criteria_extension(criteria: ReferralCriteria) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"url": "postal-code", "valueString": criteria.postal_code}]
    if criteria.language:
        parts.append({"url": "language", "valueCode": criteria.language})
    parts.extend({"url": "eligibility", "valueCode": c} for c in sorted(criteria.eligibility))
    return {"url": CRITERIA_EXTENSION, "extension": parts}


def criteria_of(service_request: Resource, age: int | None) -> ReferralCriteria | None:
    """The ranking criteria stored on a referral ServiceRequest (None if it has none)."""
    domain = next(
        (
            c.code
            for cat in getattr(service_request, "category", None) or []
            for c in cat.coding or []
            if c.system == t.SDOHCC_TEMPORARY_CODES and c.code
        ),
        None,
    )
    for ext in getattr(service_request, "extension", None) or []:
        if ext.url != CRITERIA_EXTENSION or domain is None:
            continue
        values: dict[str, list[str]] = {}
        for sub in ext.extension or []:
            value = sub.valueString or sub.valueCode
            if value:
                values.setdefault(sub.url, []).append(str(value))
        postal = values.get("postal-code", [None])[0]
        if not postal:
            return None
        return ReferralCriteria(
            domain=domain,
            postal_code=postal,
            language=values.get("language", [None])[0],
            eligibility=frozenset(values.get("eligibility", [])),
            age=age,
        )
    return None


# ---------------------------------------------------------------------------------------------
# carecoord.sdoh.need-identified


handlers = Handlers(
    "referrals",
    config=ReferralConfig,
    description="Closed-loop community referrals (Gravity SDOH): rank the directory, refer, "
    "follow the Task to completion or to the next organisation",
)


@handlers.on(SdohNeedIdentified)
def handle_need_identified(d: Delivery[SdohNeedIdentified, ReferralConfig]) -> Effects:
    try:
        domain = sdoh_domain(d.data.domain)
    except ValueError as exc:  # its text echoes the domain given: free text, never in a message
        known = ", ".join(sorted(t.SDOH_DOMAINS))
        raise MalformedEvent(
            f"invalid data: domain: not a known SDOH domain ({known})",
            event_id=d.event.id,
            event_type=d.event.type,
        ) from exc
    now = d.event.time or d.ctx.now()
    patient = d.patient
    try:
        evidence = [d.data.evidence] if d.data.evidence else []
        condition = sdoh_condition(
            key=d.event.id, patient=patient, domain=domain.key, identified_at=now, evidence=evidence
        )
        goal = sdoh_goal(
            key=d.event.id,
            patient=patient,
            domain=domain.key,
            condition=create_for(condition).full_url,
            start=now.date(),
        )
    except ValueError as exc:  # the builders' text may echo the evidence given
        raise MalformedEvent(
            "invalid data: evidence must be a 'Type/id' reference and time must have a timezone",
            event_id=d.event.id,
            event_type=d.event.type,
        ) from exc
    sr_value = identifier_value(d.patient_id, domain.key, d.event.id)
    _prefetch(d.ctx, d.patient_id, domain.key, sr_value, goal)
    team = patient_team(d.fhir, d.patient_id)
    fx = Effects()
    requester = requester_for(
        fx,
        d.fhir,
        team.care_manager,
        d.config.organization,
        d.config.requester,
        d.config.practice_phone,
    )
    if requester is None:
        raise HandlerError(
            "no requester for the referral: a referral Task is requested by a PractitionerRole "
            "or an Organization; configure the referrals handler's 'organization' (the practice) "
            "or a 'requester' PractitionerRole/Organization",
            event_id=d.event.id,
            patient=d.patient_id,
        )
    criteria = ReferralCriteria(
        domain=domain.key,
        postal_code=d.data.postal_code,
        language=d.data.language,
        eligibility=frozenset(_eligibility_of(d.data)),
        age=patient_age(d.fhir, d.patient_id, now.date()),
    )
    condition_ref = add_create(fx, condition)
    goal_ref = add_create(fx, goal)
    # The patient's consent to share (SDOHCC Consent), for the ServiceRequest's supportingInfo.
    consents = referral_consents(
        fx,
        d.data,
        key=d.event.id,
        patient_id=d.patient_id,
        domain=domain.key,
        organization=consent_organization(d.config.organization, requester, d.config.requester),
    )

    existing_sr = _one(d.fhir.search(*_referral_search(sr_value)))
    attempts = _attempts(d.ctx, d.patient_id, existing_sr) if existing_sr is not None else []

    if not d.data.consent_to_contact:
        sr = _service_request(
            d.event.id,
            d.patient_id,
            domain.key,
            requester,
            None,
            condition_ref,
            goal_ref,
            now,
            criteria,
            status="draft",
            contact_prohibited=True,
            consents=consents,
        )
        sr_ref = add_create(fx, sr)
        _manual_task(
            fx,
            d.patient_id,
            sr_value,
            sr_ref,
            team.care_manager or requester,
            requester,
            now,
            t.BUSINESS_NO_CONSENT,
        )
        _join_care_plan(fx, d.ctx, d.patient_id, existing_sr, condition_ref, goal_ref, sr_ref)
        log.info("referral held: no consent to contact")
        return fx

    if attempts:  # a replay: the referral was already sent; say so again with the same id
        first = min(attempts, key=lambda a: a.number)
        sr = _service_request(
            d.event.id,
            d.patient_id,
            domain.key,
            requester,
            first.organization,
            condition_ref,
            goal_ref,
            now,
            criteria,
            consents=consents,
        )
        add_create(fx, sr)
        _emit_created(fx, d.event, d.patient_id, domain.key, existing_sr, sr, first, None)
        return fx

    if existing_sr is not None and _manual_exists(d.ctx, d.patient_id, sr_value):
        # A replay of a need that found no match: say so again (same id), create nothing new.
        _unmatched(
            fx,
            d.event,
            d.patient_id,
            domain.key,
            existing_sr,
            existing_sr,
            sr_value,
            f"ServiceRequest/{existing_sr.id}",
            team.care_manager or requester,
            requester,
            now,
            tried=[],
        )
        return fx

    services = _directory(d.ctx, domain.key)
    candidates = rank(services, criteria)
    best = candidates[0] if candidates else None
    sr = _service_request(
        d.event.id,
        d.patient_id,
        domain.key,
        requester,
        best.organization if best else None,
        condition_ref,
        goal_ref,
        now,
        criteria,
        consents=consents,
    )
    sr_ref = add_create(fx, sr)
    _join_care_plan(fx, d.ctx, d.patient_id, existing_sr, condition_ref, goal_ref, sr_ref)
    if best is None:
        _unmatched(
            fx,
            d.event,
            d.patient_id,
            domain.key,
            sr,
            existing_sr,
            sr_value,
            sr_ref,
            team.care_manager or requester,
            requester,
            now,
            tried=[],
        )
        return fx
    task = _referral_task(
        d.patient_id,
        domain.key,
        sr_value,
        1,
        sr_ref,
        best,
        requester,
        now,
        concerns=[condition_ref],
    )
    add_create(fx, task)
    _emit_created(fx, d.event, d.patient_id, domain.key, existing_sr, sr, None, (task, best, 1))
    log.info("referral created", extra={"service": best.service})
    return fx


def requester_problem(config: Mapping[str, Any]) -> str | None:
    """Why the handler cannot request a referral with this configuration, checked when the service
    starts (never per event). A Gravity referral Task's requester must be a PractitionerRole or an
    Organization (SDOHCCTaskForReferralManagement.fsh: requester only Reference(
    SDOHCCPractitionerRole or USCoreOrganizationProfile)); carecoord's enrolment names the care
    manager as a Practitioner, and a PractitionerRole needs the Organization it is held at
    (SDOHCCPractitionerRole.fsh: organization 1..). So the practice `organization`, or a
    `requester` PractitionerRole/Organization, must be configured."""
    if config.get("organization"):
        return None
    requester = str(config.get("requester") or "")
    if requester.startswith(("PractitionerRole/", "Organization/")):
        return None
    prefix = "CARECOORD_HANDLERS__referrals__"
    why = (
        f"{prefix}requester is a Practitioner, which cannot request a referral Task"
        if requester
        else f"{prefix}organization is not set"
    )
    return (
        f"{why}: a Gravity SDOH referral is requested by a PractitionerRole or an Organization; "
        f"set {prefix}organization=Organization/<practice id> (the care managers' practice), or "
        f"{prefix}requester=Organization/<id> or PractitionerRole/<id>, or switch the handler "
        "off with CARECOORD_HANDLERS_DISABLED=referrals"
    )


def _eligibility_of(data: SdohNeedIdentified) -> list[str]:
    extra = (data.model_extra or {}).get("eligibility")
    if isinstance(extra, str):
        return [extra]
    if isinstance(extra, list):
        return [str(x) for x in extra if isinstance(x, str) and x]
    return []


def _service_request(
    key: str,
    pid: str,
    domain: str,
    requester: str,
    performer: str | None,
    condition_ref: str,
    goal_ref: str,
    now: datetime,
    criteria: ReferralCriteria,
    status: Literal["draft", "active"] = "active",
    contact_prohibited: bool = False,
    consents: Sequence[str] = (),
) -> Resource:
    sr = referral_service_request(
        key=key,
        patient=f"Patient/{pid}",
        domain=domain,
        requester=requester,
        performer=performer,
        reasons=[condition_ref],
        goals=[goal_ref],
        authored_on=now,
        status=status,
        contact_prohibited=contact_prohibited,
        consents=consents,
    )
    extensions = [*(to_json(sr).get("extension") or []), criteria_extension(criteria)]
    return _with(sr, extension=extensions)


def _referral_task(
    pid: str,
    domain: str,
    sr_value: str,
    number: int,
    sr_ref: str,
    candidate: Candidate,
    requester: str,
    now: datetime,
    concerns: Sequence[str] = (),
) -> Resource:
    task = referral_task(
        key=f"{sr_value}:{number}",
        patient=f"Patient/{pid}",
        domain=domain,
        service_request=sr_ref,
        owner=candidate.organization,
        requester=requester,
        authored_on=now,
    )
    # Content-rich referral (SDOHCC STU 3, SDOHCCTaskForReferralManagement.fsh @6604b7a:
    # input[AdditionalContent], type additional-content, any Reference): the SDOH Condition the
    # referral addresses (its evidence hangs off it), so the CBO need not look for it.
    content = [
        {"type": t.SDOHCC_ADDITIONAL_CONTENT.concept_json(), "valueReference": {"reference": c}}
        for c in concerns
    ]
    return _with(
        task,
        input=[
            {
                "type": t.TASK_INPUT_HEALTHCARE_SERVICE.concept_json(),
                "valueReference": {"reference": candidate.service},
            },
            {"type": t.TASK_INPUT_ATTEMPT.concept_json(), "valueInteger": number},
            *content,
        ],
    )


def _manual_task(
    fx: Effects,
    pid: str,
    sr_value: str,
    sr_ref: str,
    owner: str,
    requester: str,
    now: datetime,
    why: t.Code,
) -> Resource:
    task: Resource = work_task(
        key=sr_value,
        patient=f"Patient/{pid}",
        work=t.TASK_MANUAL_REFERRAL,
        owner=owner,
        requester=requester,
        business_status=why.code,
        authored_on=now,
    )
    task = _with(task, focus={"reference": sr_ref})
    add_create(fx, task)
    return task


def _unmatched(
    fx: Effects,
    event: CloudEvent,
    pid: str,
    domain: str,
    sr: Resource,
    existing_sr: Resource | None,
    sr_value: str,
    sr_ref: str,
    owner: str,
    requester: str,
    now: datetime,
    tried: Sequence[str],
) -> None:
    task = _manual_task(fx, pid, sr_value, sr_ref, owner, requester, now, t.BUSINESS_NO_MATCH)
    data: dict[str, Any] = {
        "domain": domain,
        "service_request_identifier": _ident(sr),
        "manual_task_identifier": _ident(task),
        "tried": list(tried),
        "reason": "all-candidates-declined" if tried else "no-candidates",
    }
    if existing_sr is not None:
        data["service_request"] = f"ServiceRequest/{existing_sr.id}"
    # Keyed on the referral, not the trigger: whatever event (or notification) finds the
    # candidates exhausted announces it under the same id.
    fx.emit(
        ReferralUnmatched(**data),
        f"Patient/{pid}",
        id=derived_id(_ident(sr), ReferralUnmatched.event_type),
    )
    log.info("referral unmatched", extra={"tried": len(tried)})


def _emit_created(
    fx: Effects,
    event: CloudEvent,
    pid: str,
    domain: str,
    existing_sr: Resource | None,
    sr: Resource,
    existing: Attempt | None,
    new: tuple[Resource, Candidate, int] | None,
) -> None:
    data: dict[str, Any] = {"domain": domain, "service_request_identifier": _ident(sr)}
    if existing_sr is not None:
        data["service_request"] = f"ServiceRequest/{existing_sr.id}"
    if existing is not None:
        data.update(
            task=existing.reference,
            task_identifier=_ident(existing.task),
            healthcare_service=existing.service,
            organization=existing.organization,
            attempt=existing.number,
        )
    elif new is not None:
        task, candidate, number = new
        data.update(
            task_identifier=_ident(task),
            healthcare_service=candidate.service,
            organization=candidate.organization,
            attempt=number,
        )
    # Keyed on the referral attempt, not the trigger: a replay, or a FHIR notification of a
    # status carecoord itself wrote, re-announces the same attempt under the same id.
    attempt_key = data.get("task_identifier") or _ident(sr)
    fx.emit(
        ReferralCreated(**data),
        f"Patient/{pid}",
        id=derived_id(str(attempt_key), ReferralCreated.event_type),
    )


def _join_care_plan(
    fx: Effects,
    ctx: HandlerContext,
    pid: str,
    existing_sr: Resource | None,
    condition_ref: str,
    goal_ref: str,
    sr_ref: str,
) -> None:
    """Add the concern, goal and referral to the patient's active CarePlan (once)."""
    plan = active_care_plan(ctx.fhir, pid)
    if plan is None:
        return
    data = to_json(plan)
    if existing_sr is not None and any(
        a.get("reference", {}).get("reference") == f"ServiceRequest/{existing_sr.id}"
        for a in data.get("activity", [])
    ):
        return
    data.setdefault("addresses", []).append({"reference": condition_ref})
    data.setdefault("goal", []).append({"reference": goal_ref})
    data.setdefault("activity", []).append({"reference": {"reference": sr_ref}})
    fx.update(revised(plan, data), version_of(plan))


# ---------------------------------------------------------------------------------------------
# carecoord.referral.status-changed


@handlers.on(ReferralStatusChanged)
def handle_status_changed(d: Delivery[ReferralStatusChanged, ReferralConfig]) -> Effects:
    now = d.event.time or d.ctx.now()
    task_id = d.data.task.removeprefix("Task/")
    _fetch_with_focus(d.ctx, task_id)
    try:
        task: Any = d.fhir.read("Task", task_id)
    except (FhirNotFound, FhirGone) as exc:
        raise HandlerError(
            "referral Task not found", event_id=d.event.id, task=d.data.task
        ) from exc
    current = attempt_of(task)
    focus = getattr(getattr(task, "focus", None), "reference", None)
    if current is None or not focus or not focus.startswith("ServiceRequest/"):
        raise HandlerError(
            "not a carecoord referral Task (no referral-task identifier or focus)",
            event_id=d.event.id,
            task=d.data.task,
        )
    if getattr(getattr(task, "for_fhir", None), "reference", None) != d.patient:
        raise HandlerError(
            "referral Task is for another patient", event_id=d.event.id, task=d.data.task
        )

    fx = Effects()
    if d.data.status not in REFERRAL_TASK_STATUSES:
        raise HandlerError(
            "status is not in the SDOHCC referral Task status value set (received and ready are "
            "not referral statuses)",
            event_id=d.event.id,
            task=d.data.task,
            to=d.data.status,
        )
    sr: Any = None
    if d.data.status == "cancelled" and d.data.set_by is None:
        sr = d.fhir.read("ServiceRequest", focus.removeprefix("ServiceRequest/"))
        actor = canceller(task.status, sr.status)
    else:
        actor = actor_of(d.data.status, d.data.set_by)
    if (
        d.data.task_version
        and task.status != d.data.status
        and version_of(task) != d.data.task_version
    ):
        # Reports a status of an older version (e.g. a late FHIR notification): the event of the
        # later change carries the current status, so this one changes nothing.
        log.info("stale referral status ignored")
        return fx
    reason = d.data.reason or DEFAULT_REASONS.get(d.data.status)
    if task.status != d.data.status:
        try:
            updated = transition(task, d.data.status, reason=reason, actor=actor, at=now)
        except InvalidTransition as exc:
            raise HandlerError(
                exc.message, event_id=d.event.id, task=d.data.task, to=d.data.status
            ) from exc
        fx.update(updated, version_of(task))

    step = step_after(d.data.status, actor)
    enrollments = enrollment_statuses(task, d.fhir) if d.data.status in ENROLLMENT_REPORTED else []
    for enrollment in enrollments:
        log.info(
            "referral enrollment status reported",
            extra={"observation": enrollment.observation, "enrollment": enrollment.code},
        )
    if step == "none":
        if enrollments:
            _add_outcome(
                fx,
                d.ctx,
                d.patient_id,
                focus,
                [e.observation for e in enrollments],
                [e.value for e in enrollments],
            )
        return fx
    if sr is None:
        sr = d.fhir.read("ServiceRequest", focus.removeprefix("ServiceRequest/"))
    if step == "complete":
        _complete(fx, d.ctx, d.config, d.patient_id, sr, task, now, enrollments)
    elif step == "revoke":
        _close_request(fx, sr, "revoked")
    else:
        _next_candidate(fx, d.ctx, d.event, d.config, d.patient_id, sr, current, now)
    return fx


def _next_candidate(
    fx: Effects,
    ctx: HandlerContext,
    event: CloudEvent,
    config: ReferralConfig,
    pid: str,
    sr: Resource,
    current: Attempt,
    now: datetime,
) -> None:
    if sr.status != "active":  # type: ignore[attr-defined]
        return
    sr_ident = carecoord_identifier(sr)
    if sr_ident is None:
        return
    sr_value = sr_ident[1]
    sr_ref = f"ServiceRequest/{sr.id}"
    attempts = _attempts(ctx, pid, sr)
    later = [a for a in attempts if a.number > current.number]
    if later:  # already moved on (a replay): repeat what was emitted then, same id
        following = min(later, key=lambda a: a.number)
        if following.number == current.number + 1:
            _emit_created(fx, event, pid, _domain_of(sr), sr, sr, following, None)
        return
    team = patient_team(ctx.fhir, pid)
    requester = getattr(getattr(sr, "requester", None), "reference", None) or config.requester
    if requester is None:  # pragma: no cover - a referral ServiceRequest always has one
        raise HandlerError("referral ServiceRequest has no requester", event_id=event.id)
    owner = team.care_manager or requester
    tried = sorted({a.service for a in attempts if a.service})
    criteria = criteria_of(sr, patient_age(ctx.fhir, pid, now.date()))
    candidates: list[Candidate] = []
    if criteria is not None and current.number < config.max_attempts:
        candidates = rank(_directory(ctx, criteria.domain), criteria, exclude=set(tried))
    if not candidates:
        if not _manual_exists(ctx, pid, sr_value):
            _unmatched(
                fx,
                event,
                pid,
                _domain_of(sr),
                sr,
                sr,
                sr_value,
                sr_ref,
                owner,
                requester,
                now,
                tried,
            )
        return
    best = candidates[0]
    number = current.number + 1
    concerns = [
        r.reference
        for r in getattr(sr, "reasonReference", None) or []
        if (r.reference or "").startswith("Condition/")
    ]
    task = _referral_task(
        pid, _domain_of(sr), sr_value, number, sr_ref, best, requester, now, concerns=concerns
    )
    add_create(fx, task)
    data = to_json(sr)
    data["performer"] = [{"reference": best.organization}]
    fx.update(revised(sr, data), version_of(sr))
    _emit_created(fx, event, pid, _domain_of(sr), sr, sr, None, (task, best, number))
    log.info(
        "referral moved to the next candidate",
        extra={"attempt": number, "service": best.service},
    )


def _complete(
    fx: Effects,
    ctx: HandlerContext,
    config: ReferralConfig,
    pid: str,
    sr: Resource,
    task: Resource,
    now: datetime,
    enrollments: Sequence[Enrollment] = (),
) -> None:
    """The organisation completed the referral: the ServiceRequest is completed, what it did
    (Task.output resulting-activity: SDOHCC Procedure references or codes) and the enrollment
    statuses it reported (Task.output additional-content) become the CarePlan activity's
    outcome, and the care manager gets a Task to review the Goal; carecoord does not decide
    that the Goal is achieved."""
    _close_request(fx, sr, "completed")
    procedures, codes = resulting_activities(task)
    _add_outcome(
        fx,
        ctx,
        pid,
        f"ServiceRequest/{sr.id}",
        [*procedures, *(e.observation for e in enrollments), f"Task/{task.id}"],
        [*(codes or [{"text": "Community referral completed"}]), *(e.value for e in enrollments)],
    )
    sr_ident = carecoord_identifier(sr)
    if sr_ident is None:
        return
    team = patient_team(ctx.fhir, pid)
    requester = getattr(getattr(sr, "requester", None), "reference", None) or config.requester
    owner = team.care_manager or requester
    if owner is None:
        return
    review = outcome_review_task(
        key=sr_ident[1],
        patient=f"Patient/{pid}",
        owner=owner,
        service_request=f"ServiceRequest/{sr.id}",
        goals=_goals_of(sr),
        referral_task=f"Task/{task.id}",
        procedures=procedures,
        authored_on=now,
        enrollments=enrollments,
    )
    add_create(fx, review)


def _add_outcome(
    fx: Effects,
    ctx: HandlerContext,
    pid: str,
    sr_ref: str,
    references: Sequence[str],
    concepts: Sequence[dict[str, Any]],
) -> None:
    """Add `references` / `concepts` (each once) to the outcome of the patient's active CarePlan
    activity for the referral `sr_ref`."""
    plan = active_care_plan(ctx.fhir, pid)
    if plan is None:
        return
    data = to_json(plan)
    changed = False
    for activity in data.get("activity", []):
        if activity.get("reference", {}).get("reference") != sr_ref:
            continue
        outcomes = activity.setdefault("outcomeReference", [])
        for target in references:
            if not any(o.get("reference") == target for o in outcomes):
                outcomes.append({"reference": target})
                changed = True
        present = activity.setdefault("outcomeCodeableConcept", [])
        for concept in concepts:
            if concept not in present:
                present.append(concept)
                changed = True
    if changed:
        fx.update(revised(plan, data), version_of(plan))


def _goals_of(sr: Resource) -> list[str]:
    """The Goals a referral pertains to (pertainsToGoal extension; supportingInfo for
    ServiceRequests written before carecoord followed the SDOHCC profile)."""

    goals = [
        ext.valueReference.reference
        for ext in getattr(sr, "extension", None) or []
        if str(ext.url).split("|")[0] == PERTAINS_TO_GOAL and ext.valueReference is not None
    ]
    goals += [
        info.reference
        for info in getattr(sr, "supportingInfo", None) or []
        if (info.reference or "").startswith("Goal/")
    ]
    return [g for g in goals if g]


def _close_request(fx: Effects, sr: Resource, status: str) -> None:
    if sr.status in ("completed", "revoked", "entered-in-error"):  # type: ignore[attr-defined]
        return
    data = to_json(sr)
    data["status"] = status
    fx.update(revised(sr, data), version_of(sr))


# ---------------------------------------------------------------------------------------------
# Reading back


def _prefetch(ctx: HandlerContext, pid: str, domain: str, sr_value: str, goal: Resource) -> None:
    """The reads of a new need in ONE batch where the server declares batch: the patient's plans
    (and CareTeams where searchable), the Patient (for age criteria), the referral if it exists
    (a replay), the directory, and whether the Goal's id is free where the Goal goes out as PUT.
    The handler then asks for each as before; the event's reads answer from the batch
    (carecoord.fhir.event_reads). Without batch nothing is prefetched: each is asked for only
    where the handler needs it."""
    if not declares_batch(ctx.fhir):
        return
    probe = existence_probe(ctx.fhir, create_for(goal))
    prefetch_with_plans(
        ctx.fhir,
        pid,
        [
            ("Patient", [("_id", pid)]),
            _referral_search(sr_value),
            _directory_search(domain),
            *([probe] if probe else []),
        ],
    )


def _referral_search(sr_value: str) -> Search:
    return ("ServiceRequest", [("identifier", f"{REFERRAL_ID}|{sr_value}")])


def _directory_search(domain: str) -> Search:
    return (
        "HealthcareService",
        [("service-category", f"{t.SDOHCC_TEMPORARY_CODES}|{domain}"), ("active", "true")],
    )


def _directory(ctx: HandlerContext, domain: str) -> list[Resource]:
    """Active HealthcareServices of the domain (ranking filters again: servers may ignore the
    search parameters)."""
    return ctx.fhir.search(*_directory_search(domain))


# The Referral Source's Task search (HL7/fhir-sdoh-clinicalcare @6604b7a input/fsh/instances/
# SDOHCC-ReferralSource.fsh): _id, code, patient, requester, status and focus SHALL, with
# `_include=Task:focus` (and Task:output) SHALL.
TASK_INCLUDES = ("Task:focus", "Task:output")
# The statuses whose Task may carry the CBO's enrollment status (Task.output).
ENROLLMENT_REPORTED = frozenset({"in-progress", "completed"})


def _fetch_with_focus(ctx: HandlerContext, task_id: str) -> None:
    """Where the server declares `_include=Task:focus`, the referral Task and its ServiceRequest
    in one search (`Task?_id=&_include=Task:focus`, and `Task:output` where declared too: the
    enrollment Observations): the handler's reads of them are then answered from it
    (carecoord.fhir.event_reads), one request instead of two or more."""
    includes = [spec for spec in TASK_INCLUDES if declares_include(ctx.fhir, "Task", spec)]
    if TASK_INCLUDES[0] in includes:
        ctx.fhir.search("Task", [("_id", task_id), *(("_include", i) for i in includes)])


def _attempts(ctx: HandlerContext, pid: str, sr: Resource) -> list[Attempt]:
    sr_ref = f"ServiceRequest/{sr.id}"
    found = ctx.fhir.search("Task", [("patient", f"Patient/{pid}"), ("focus", sr_ref)])
    attempts = []
    for task in referring(found, "Task", "focus", sr_ref):
        attempt = attempt_of(task)
        if attempt is not None:
            attempts.append(attempt)
    return attempts


def _manual_exists(ctx: HandlerContext, pid: str, sr_value: str) -> bool:
    params = identifier_search("care-task", pid, t.TASK_MANUAL_REFERRAL.code, sr_value)
    return bool(ctx.fhir.search("Task", params))


def _domain_of(sr: Resource) -> str:
    for cat in getattr(sr, "category", None) or []:
        for c in cat.coding or []:
            if c.system == t.SDOHCC_TEMPORARY_CODES and c.code:
                return str(c.code)
    return t.SDOH_UNSPECIFIED.code


def _one(found: Sequence[Resource]) -> Resource | None:
    return found[0] if found else None


def _ident(resource: Resource) -> str:
    found = carecoord_identifier(resource)
    return f"{found[0]}|{found[1]}" if found else ""


def _with(resource: Resource, **fields: Any) -> Resource:
    """A copy of `resource` with top-level elements replaced (re-validated)."""
    data = to_json(resource)
    data.update(fields)
    return revised(resource, data)


HANDLERS: list[HandlerSpec] = [handlers.spec]

__all__ = [
    "HANDLERS",
    "Attempt",
    "ReferralConfig",
    "attempt_of",
    "canceller",
    "criteria_of",
    "handle_need_identified",
    "handle_status_changed",
    "requester_problem",
    "step_after",
]

__getattr__ = old_type_names(
    __name__,
    CREATED=ReferralCreated,
    UNMATCHED=ReferralUnmatched,
    NEED_IDENTIFIED=SdohNeedIdentified,
    STATUS_CHANGED=ReferralStatusChanged,
)
