"""Program consent.

CMS requires the patient's consent (verbal or written, documented in the medical record) before
CCM starts, and informing the patient that they may stop at any time, effective at the end of
the calendar month (CMS MLN Booklet "Chronic Care Management Services", MLN909188, "Patient
Consent"); PCM, BHI, APCM and RPM carry the same requirement (docs/billing-rules.md).

- `consent_resource` builds the FHIR Consent (status active, scope treatment, category LOINC
  59284-0 "Patient Consent" + the program, dateTime = the consent date, the method and who
  recorded it in extensions; identifier consent | patient:program).
- Handler "consent": `carecoord.consent.recorded` -> the Consent, the pending CarePlan (status
  draft, see carecoord.handlers.enrolment) becomes active, and the open "obtain consent" Task is
  completed. Time logged before the consent date stays recorded but is never billed.
- `enrolment_states` reads back what billing needs per program: consent date, end, conditions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from fhir.resources.R4B.resource import Resource

from carecoord.core.catalog import ConsentRecorded, require_patient
from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import FhirReader, HandlerContext, HandlerSpec
from carecoord.core.router import Handlers
from carecoord.fhir import terminology as t
from carecoord.fhir.identifiers import add_create, business_identifier_json, identifier_system
from carecoord.fhir.models import to_json
from carecoord.fhir.workflow import FINAL
from carecoord.handlers.care_model import (
    CARE_PLAN_ID,
    as_date,
    build,
    has_code,
    identifier_value,
    patient_of,
    ref_of,
    reference_str,
    version_of,
)
from carecoord.handlers.task_paths import complete

log = logging.getLogger(__name__)

CONSENT_RECORDED = "carecoord.consent.recorded"
CONSENT_ID = identifier_system("consent")  # <patient>:<program>


def consent_resource(
    *, patient_id: str, program: str, day: date, method: str, recorded_by: str
) -> Resource:
    body: dict[str, Any] = {
        "resourceType": "Consent",
        "identifier": [business_identifier_json("consent", patient_id, program)],
        "status": "active",
        "scope": t.CONSENT_SCOPE_TREATMENT.concept_json(),
        "category": [
            t.CONSENT_PATIENT_CONSENT.concept_json(),
            t.PROGRAMS[program].concept_json(),
        ],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": datetime.combine(day, datetime.min.time(), UTC).isoformat(),
        "policyRule": {"text": f"Medicare {program} program consent"},
        "provision": {"period": {"start": day.isoformat()}},
        "extension": [
            {"url": t.CONSENT_METHOD_EXTENSION, "valueCode": method},
            {"url": t.CONSENT_RECORDED_BY_EXTENSION, "valueReference": {"reference": recorded_by}},
        ],
    }
    return build("Consent", body)


def program_of_consent(consent: Any) -> str | None:
    for category in consent.category or []:
        for coding in category.coding or []:
            if coding.system == t.CARE_PROGRAM_SYSTEM:
                return str(coding.code)
    return None


def patient_consents(fhir: FhirReader, patient_id: str) -> list[Any]:
    found: list[Any] = fhir.search("Consent", [("patient", f"Patient/{patient_id}")])
    return carecoord_consents(found, patient_id)


def carecoord_consents(found: Sequence[Any], patient_id: str) -> list[Any]:
    """The patient's carecoord program Consents among search results (re-filtered here)."""
    return [
        c
        for c in found
        if c.get_resource_type() == "Consent"
        and reference_str(c.patient) == f"Patient/{patient_id}"
        and identifier_value(c, CONSENT_ID)
        and c.status in ("active", "inactive")
    ]


def consent_span(consent: Any) -> tuple[date | None, date | None]:
    """(from, until) of a Consent: its dateTime, and provision.period.end once revoked."""
    start = as_date(consent.dateTime)
    period = consent.provision.period if consent.provision else None
    end = as_date(period.end) if period is not None and period.end is not None else None
    return start, end


@dataclass(frozen=True)
class ProgramState:
    program: str
    plan: Any | None
    consent: Any | None
    consent_from: date | None
    ends: date | None
    conditions: tuple[str, ...]
    provider: str | None
    care_manager: str | None


def patient_plans(fhir: FhirReader, patient_id: str) -> list[Any]:
    """Every carecoord CarePlan of a patient, whatever its status."""
    found: list[Any] = fhir.search("CarePlan", [("patient", f"Patient/{patient_id}")])
    return carecoord_plans(found, patient_id)


def carecoord_plans(found: Sequence[Any], patient_id: str) -> list[Any]:
    """The patient's carecoord CarePlans among search results (re-filtered here)."""
    return [
        p
        for p in found
        if p.get_resource_type() == "CarePlan"
        and patient_of(p) == patient_id
        and identifier_value(p, CARE_PLAN_ID)
        and p.status != "entered-in-error"
    ]


def _started(plan: Any) -> str:
    """The plan's period.start for comparing (ISO dates sort as text); "" when it has none, so
    that a dated plan wins over one without a start, whichever was listed first."""
    return str(plan.period.start) if plan.period and plan.period.start else ""


def enrolment_states(fhir: FhirReader, patient_id: str) -> dict[str, ProgramState]:
    """Per program: the latest-started CarePlan, its consent, end, conditions and care team."""
    return states_of(patient_plans(fhir, patient_id), patient_consents(fhir, patient_id))


def states_of(
    patient_plans: Sequence[Any], consents_found: Sequence[Any]
) -> dict[str, ProgramState]:
    """`enrolment_states` from one patient's (already filtered) CarePlans and Consents."""
    from carecoord.handlers.outreach import program_of
    from carecoord.handlers.patient_context import care_team_of

    plans: dict[str, Any] = {}
    for plan in patient_plans:
        program = program_of(plan)
        if program is None:
            continue
        best = plans.get(program)
        if best is None or _started(plan) > _started(best):
            plans[program] = plan
    consents = {program_of_consent(c): c for c in consents_found}
    out: dict[str, ProgramState] = {}
    for program in set(plans) | {p for p in consents if p}:
        plan = plans.get(program)
        consent = consents.get(program)
        consent_from, consent_end = consent_span(consent) if consent is not None else (None, None)
        ends = as_date(plan.period.end) if plan is not None and plan.period else None
        if consent_end is not None:
            ends = min(ends, consent_end) if ends else consent_end
        conditions = tuple(
            r
            for r in (reference_str(a) for a in (plan.addresses if plan is not None else []) or [])
            if r
        )
        manager, provider = care_team_of(plan) if plan is not None else (None, None)
        out[program] = ProgramState(
            program, plan, consent, consent_from, ends, conditions, provider, manager
        )
    return out


def open_tasks(fhir: FhirReader, patient_id: str, codes: Sequence[t.Code]) -> list[Any]:
    found: list[Any] = fhir.search("Task", [("patient", f"Patient/{patient_id}")])
    return [
        task
        for task in found
        if task.get_resource_type() == "Task"
        and patient_of(task) == patient_id
        and task.status not in FINAL
        and any(has_code(task.code, c.system, c.code) for c in codes)
    ]


handlers = Handlers(
    "consent",
    description="Records program consent (FHIR Consent); activates a pending enrolment.",
)


@handlers.on(CONSENT_RECORDED, data=ConsentRecorded)
def handle_consent_recorded(
    event: CloudEvent, data: ConsentRecorded, ctx: HandlerContext, config: HandlerConfig
) -> Effects:
    pid = require_patient(event)
    effects = Effects()
    existing = [
        c
        for c in patient_consents(ctx.fhir, pid)
        if program_of_consent(c) == data.program and c.status == "active"
    ]
    if not existing:
        add_create(
            effects,
            consent_resource(
                patient_id=pid,
                program=data.program,
                day=data.date,
                method=data.method,
                recorded_by=data.recorded_by,
            ),
        )
    at = event.time or ctx.now()
    states = enrolment_states(ctx.fhir, pid)
    state = states.get(data.program)
    plan = state.plan if state is not None else None
    if plan is not None and plan.status == "draft":
        body = to_json(plan)
        body["status"] = "active"
        effects.update(build("CarePlan", body), version_of(plan))
    plan_ref = ref_of(plan) if plan is not None else None
    for task in open_tasks(ctx.fhir, pid, [t.TASK_OBTAIN_CONSENT]):
        if plan_ref is not None and plan_ref not in {reference_str(b) for b in task.basedOn or []}:
            continue
        done = to_json(complete(task, reason="Consent recorded", at=at))
        effects.update(build("Task", done), version_of(task))
    log.info("consent recorded", extra={"event_id": event.id, "program": data.program})
    return effects


HANDLERS: list[HandlerSpec] = [handlers.spec]
