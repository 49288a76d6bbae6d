"""A patient's enrolment in each program, read from carecoord's CarePlans and Consents: the
latest-started plan, its consent and when it ends, the conditions it addresses and its team.
Billing, TCM, disenrolment, consent and the worklist all decide on this one view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from carecoord.caremodel.identifiers import identifier_system
from carecoord.core.handler import FhirReader
from carecoord.fhir.reading import element, field, items
from carecoord.handlers.care.model import (
    CARE_PLAN_ID,
    as_date,
    identifier_value,
    patient_of,
    reference_str,
    referring,
)
from carecoord.handlers.care.patient_context import care_team_of, program_of

CONSENT_ID = identifier_system("consent")  # <patient>:<program>


program_of_consent = program_of  # a Consent names its program in `category` as a CarePlan does


def patient_consents(fhir: FhirReader, patient_id: str) -> list[Any]:
    found: list[Any] = fhir.search("Consent", [("patient", f"Patient/{patient_id}")])
    return carecoord_consents(found, patient_id)


def carecoord_consents(found: Sequence[Any], patient_id: str) -> list[Any]:
    """The patient's carecoord program Consents among search results (re-filtered here)."""
    consents = referring(found, "Consent", "patient", f"Patient/{patient_id}")
    return [
        c
        for c in consents
        if identifier_value(c, CONSENT_ID) and element(c, "status") in ("active", "inactive")
    ]


def consent_span(consent: Any) -> tuple[date | None, date | None]:
    """(from, until) of a Consent: its dateTime, and provision.period.end once revoked."""
    start = as_date(element(consent, "dateTime"))
    end = as_date(field(field(element(consent, "provision"), "period"), "end"))
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
        and element(p, "status") != "entered-in-error"
    ]


def _started(plan: Any) -> str:
    """The plan's period.start for comparing (ISO dates sort as text); "" when it has none, so
    that a dated plan wins over one without a start, whichever was listed first."""
    start = field(element(plan, "period"), "start")
    return str(start) if start else ""


def enrolment_states(fhir: FhirReader, patient_id: str) -> dict[str, ProgramState]:
    """Per program: the latest-started CarePlan, its consent, end, conditions and care team."""
    return states_of(patient_plans(fhir, patient_id), patient_consents(fhir, patient_id))


def states_of(
    patient_plans: Sequence[Any], consents_found: Sequence[Any]
) -> dict[str, ProgramState]:
    """`enrolment_states` from one patient's (already filtered) CarePlans and Consents."""

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
        ends = as_date(field(element(plan, "period"), "end")) if plan is not None else None
        if consent_end is not None:
            ends = min(ends, consent_end) if ends else consent_end
        conditions = tuple(
            r
            for r in (
                reference_str(a)
                for a in items(element(plan, "addresses") if plan is not None else None)
            )
            if r
        )
        manager, provider = care_team_of(plan) if plan is not None else (None, None)
        out[program] = ProgramState(
            program, plan, consent, consent_from, ends, conditions, provider, manager
        )
    return out
