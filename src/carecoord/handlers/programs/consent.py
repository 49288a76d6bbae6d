"""Program consent.

CMS requires the patient's consent (verbal or written, documented in the medical record) before
CCM starts, and informing the patient that they may stop at any time, effective at the end of
the calendar month (CMS MLN Booklet "Chronic Care Management Services", MLN909188, "Patient
Consent"); PCM, BHI, APCM and RPM carry the same requirement (docs/billing-rules.md).

- `consent_resource` builds the FHIR Consent (status active, scope treatment, category LOINC
  59284-0 "Patient Consent" + the program, dateTime = the consent date, the method and who
  recorded it in extensions; identifier consent | patient:program).
- Handler "consent": `carecoord.consent.recorded` -> the Consent, the pending CarePlan (status
  draft, see programs/enrolment.py) becomes active, and the open "obtain consent" Task is
  completed. Time logged before the consent date stays recorded but is never billed.
- `enrolment_states` reads back what billing needs per program: consent date, end, conditions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from fhir.resources.R4B.resource import Resource

from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import add_create, business_identifier_json
from carecoord.core.catalog import ConsentRecorded
from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Effects
from carecoord.core.handler import FhirReader, HandlerSpec
from carecoord.core.router import Delivery, Handlers
from carecoord.fhir.models import to_json
from carecoord.handlers.care.enrolment_state import (
    enrolment_states,
    patient_consents,
    program_of_consent,
)
from carecoord.handlers.care.model import (
    build,
    has_code,
    ref_of,
    reference_str,
    version_of,
)
from carecoord.handlers.care.task_paths import complete, open_tasks_of

log = logging.getLogger(__name__)

CONSENT_RECORDED = ConsentRecorded.event_type


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


def open_tasks(fhir: FhirReader, patient_id: str, codes: Sequence[t.Code]) -> list[Any]:
    found: list[Any] = fhir.search("Task", [("patient", f"Patient/{patient_id}")])
    return [
        task
        for task in open_tasks_of(found, patient_id)
        if any(has_code(task.code, c.system, c.code) for c in codes)
    ]


handlers = Handlers(
    "consent",
    description="Records program consent (FHIR Consent); activates a pending enrolment.",
)


@handlers.on(ConsentRecorded)
def handle_consent_recorded(d: Delivery[ConsentRecorded, HandlerConfig]) -> Effects:
    effects = Effects()
    existing = [
        c
        for c in patient_consents(d.fhir, d.patient_id)
        if program_of_consent(c) == d.data.program and c.status == "active"
    ]
    if not existing:
        add_create(
            effects,
            consent_resource(
                patient_id=d.patient_id,
                program=d.data.program,
                day=d.data.date,
                method=d.data.method,
                recorded_by=d.data.recorded_by,
            ),
        )
    at = d.event.time or d.ctx.now()
    states = enrolment_states(d.fhir, d.patient_id)
    state = states.get(d.data.program)
    plan = state.plan if state is not None else None
    if plan is not None and plan.status == "draft":
        body = to_json(plan)
        body["status"] = "active"
        effects.update(build("CarePlan", body), version_of(plan))
    plan_ref = ref_of(plan) if plan is not None else None
    for task in open_tasks(d.fhir, d.patient_id, [t.TASK_OBTAIN_CONSENT]):
        if plan_ref is not None and plan_ref not in {reference_str(b) for b in task.basedOn or []}:
            continue
        done = to_json(complete(task, reason="Consent recorded", at=at))
        effects.update(build("Task", done), version_of(task))
    log.info("consent recorded", extra={"program": d.data.program})
    return effects


HANDLERS: list[HandlerSpec] = [handlers.spec]
