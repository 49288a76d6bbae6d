"""Disenrolment: the patient may stop a program at any time, effective at the end of the
calendar month (CMS MLN909188, "Patient Consent"; docs/billing-rules.md D1-D3).

Handler "disenrolment": `carecoord.patient.disenrolled` {program, reason, effective_date?} -> in
one transaction the program's CarePlan is revoked with period.end = the effective date (default:
the last day of the event's month) and the reason in an extension; its Consent becomes inactive
(provision.period.end); the patient's open outreach requests of the program are revoked; open
care-management Tasks of the plan are cancelled (statusReason "disenrolled"). The sweeper then
creates nothing more (the plan is no longer active) and billing stops after the effective date.

Also here, called by the outreach handler: the "confirm disenrolment" Task after a call in which
the patient declines, and the review Task for a patient unreachable for `unreachable_months`
consecutive months.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from carecoord.caremodel import builders as care
from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import add_create
from carecoord.core.catalog import PatientDisenrolled
from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Effects
from carecoord.core.handler import FhirReader, HandlerSpec
from carecoord.core.router import Delivery, Handlers
from carecoord.fhir.models import to_json
from carecoord.handlers.care.enrolment_state import enrolment_states
from carecoord.handlers.care.model import (
    OUTREACH_REQUEST_ID,
    CareConfig,
    Month,
    build,
    identifier_value,
    ref_of,
    reference_str,
    version_of,
)
from carecoord.handlers.care.outreach_requests import (
    monthly_for,
    patient_requests,
    request_work_task,
)
from carecoord.handlers.care.task_paths import cancel, open_tasks_of

log = logging.getLogger(__name__)

DISENROLLED = PatientDisenrolled.event_type
_OPEN_REQUEST = ("draft", "active", "on-hold")


handlers = Handlers(
    "disenrolment",
    description="Ends a program: CarePlan revoked, consent inactive, outreach revoked, "
    "open care-management Tasks cancelled; billing stops after the effective date.",
)


@handlers.on(PatientDisenrolled)
def handle_disenrolled(d: Delivery[PatientDisenrolled, HandlerConfig]) -> Effects:
    at = d.aware_time()
    effective = d.data.effective_date or Month.of(at).end
    effects = Effects()
    state = enrolment_states(d.fhir, d.patient_id).get(d.data.program)
    if state is None or state.plan is None:
        log.info("disenrolment of a program the patient is not in")
        return effects
    plan = state.plan
    if plan.status in ("active", "draft", "on-hold"):
        body = to_json(plan)
        body["status"] = "revoked"
        body.setdefault("period", {})["end"] = effective.isoformat()
        body.setdefault("extension", []).append(
            {"url": t.DISENROLMENT_REASON_EXTENSION, "valueCode": d.data.reason}
        )
        effects.update(build("CarePlan", body), version_of(plan))
    consent = state.consent
    if consent is not None and consent.status == "active":
        body = to_json(consent)
        body["status"] = "inactive"
        body.setdefault("provision", {}).setdefault("period", {})["end"] = effective.isoformat()
        effects.update(build("Consent", body), version_of(consent))

    for cr in requests_to_revoke(patient_requests(d.fhir, d.patient_id), d.data.program):
        body = to_json(cr)
        body["status"] = "revoked"
        body["statusReason"] = t.NOT_DONE_PATIENT_OBJECTION.concept_json("Patient disenrolled")
        effects.update(build("CommunicationRequest", body), version_of(cr))
    plan_ref = ref_of(plan)
    found: list[Any] = d.fhir.search("Task", [("patient", d.patient)])
    for task in tasks_to_cancel(found, d.patient_id, plan_ref):
        if t.concept_has(task.code, t.TASK_CONFIRM_DISENROLMENT):
            closed = cancel(task, reason="Disenrolment recorded", at=at)
        else:
            closed = cancel(task, reason="Patient disenrolled from the program", at=at)
        body = to_json(closed)
        body["statusReason"] = t.REASON_DISENROLLED.concept_json(
            "Patient disenrolled from the program"
        )
        effects.update(build("Task", body), version_of(task))
    log.info(
        "patient disenrolled",
        extra={"program": d.data.program, "reason": d.data.reason},
    )
    return effects


def requests_to_revoke(found: list[Any], program: str) -> list[Any]:
    """The open outreach requests of `program` among the patient's: monthly ones by their key
    (<patient>:<program>:<month>), alternative channels by their group (the monthly key)."""
    out = []
    for cr in found:
        key = identifier_value(cr, OUTREACH_REQUEST_ID) or (
            cr.groupIdentifier.value if cr.groupIdentifier else ""
        )
        if f":{program}:" in f":{key}" and cr.status in _OPEN_REQUEST:
            out.append(cr)
    return out


def tasks_to_cancel(found: list[Any], patient_id: str, plan_ref: str) -> list[Any]:
    """The patient's open Tasks of the plan (based on it) among `found`. Another plan's Tasks,
    a referral's, and a TCM episode's (its medication reconciliation is also based on the CCM or
    PCM plan, but is TCM's work and billing) stay as they are."""
    return [
        task
        for task in open_tasks_of(found, patient_id)
        if plan_ref in {reference_str(b) for b in task.basedOn or []}
        and not (reference_str(task.focus) or "").startswith("EpisodeOfCare/")
    ]


def confirm_disenrolment(effects: Effects, cr: Any, patient_id: str, at: datetime) -> None:
    """After a call in which the patient declines: a Task for the care manager to confirm the
    disenrolment (and then publish carecoord.patient.disenrolled)."""

    request_work_task(
        effects, cr, patient_id, at, t.TASK_CONFIRM_DISENROLMENT, 7, t.REASON_PATIENT_DECLINED
    )


def unreachable_review(
    effects: Effects,
    fhir: FhirReader,
    config: CareConfig,
    plan: Any,
    patient_id: str,
    program: str,
    month: Month,
    owner: str,
) -> bool:
    """At the start of `month`: if the previous `unreachable_months` months' outreach requests
    of the plan all exist and none was answered (completed), a review Task for the care manager."""

    requests = [
        cr
        for cr in patient_requests(fhir, patient_id)
        if f":{program}:" in f":{identifier_value(cr, OUTREACH_REQUEST_ID) or ''}"
    ]
    previous: list[Month] = []
    current = month
    for _ in range(config.unreachable_months):
        current = (
            Month(current.year - 1, 12)
            if current.month == 1
            else Month(current.year, current.month - 1)
        )
        previous.append(current)
    for m in previous:
        mine = monthly_for(requests, m)
        if not mine or any(cr.status == "completed" for cr in mine):
            return False
    task = care.work_task(
        key=f"{program}:{month.label}",
        patient=f"Patient/{patient_id}",
        work=t.TASK_UNREACHABLE_REVIEW,
        owner=owner,
        due=month.start + timedelta(days=7),
        care_plan=ref_of(plan),
        authored_on=datetime.combine(month.start, datetime.min.time(), UTC),
    )
    body = to_json(task)
    body["reasonCode"] = t.REASON_UNREACHABLE.concept_json(
        f"Not reached for {config.unreachable_months} consecutive months"
    )
    add_create(effects, build("Task", body))
    return True


HANDLERS: list[HandlerSpec] = [handlers.spec]
