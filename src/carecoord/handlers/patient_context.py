"""Read-only lookups the referral and clinical-routing handlers share: who looks after a patient
(from the active CareTeams the enrolment handler writes), the patient's active CarePlan, age."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir.resources.R4B.resource import Resource

from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.terminology import ROLE_CARE_COORDINATOR, ROLE_PRIMARY_CARE_PHYSICIAN
from carecoord.handlers.base import FhirReader


@dataclass(frozen=True)
class PatientTeam:
    care_manager: str | None  # "Practitioner/<id>"
    provider: str | None


def _references_patient(resource: Any, patient_id: str) -> bool:
    subject = getattr(resource, "subject", None)
    return getattr(subject, "reference", None) == f"Patient/{patient_id}"


def _sort_key(resource: Any) -> tuple[str, str]:
    period = getattr(resource, "period", None)
    start = getattr(period, "start", None) if period is not None else None
    return (str(start or ""), str(resource.id or ""))


def patient_team(fhir: FhirReader, patient_id: str) -> PatientTeam:
    """The care manager and provider of the patient's active care teams (latest start first)."""
    teams = [
        t
        for t in fhir.search("CareTeam", {"subject": f"Patient/{patient_id}"})
        if t.get_resource_type() == "CareTeam"
        and _references_patient(t, patient_id)
        and getattr(t, "status", None) in (None, "active")
    ]
    care_manager: str | None = None
    provider: str | None = None
    for team in sorted(teams, key=_sort_key, reverse=True):
        for p in getattr(team, "participant", None) or []:
            member = getattr(getattr(p, "member", None), "reference", None)
            if not member:
                continue
            roles = p.role if isinstance(p.role, list) else [p.role]
            if care_manager is None and any(
                ROLE_CARE_COORDINATOR.matches(c) for r in roles if r for c in r.coding or []
            ):
                care_manager = member
            if provider is None and any(
                ROLE_PRIMARY_CARE_PHYSICIAN.matches(c) for r in roles if r for c in r.coding or []
            ):
                provider = member
    return PatientTeam(care_manager, provider)


def active_care_plan(fhir: FhirReader, patient_id: str) -> Resource | None:
    """The patient's earliest-started active CarePlan (stable choice when there are several)."""
    plans = [
        p
        for p in fhir.search("CarePlan", {"subject": f"Patient/{patient_id}"})
        if p.get_resource_type() == "CarePlan"
        and _references_patient(p, patient_id)
        and getattr(p, "status", None) == "active"
    ]
    return min(plans, key=_sort_key) if plans else None


def patient_age(fhir: FhirReader, patient_id: str, on: date) -> int | None:
    """Age in whole years on `on`, or None when the Patient or its birthDate is unknown."""
    try:
        patient = fhir.read("Patient", patient_id)
    except (FhirNotFound, FhirGone):
        return None
    born = getattr(patient, "birthDate", None)
    if not isinstance(born, date):
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
