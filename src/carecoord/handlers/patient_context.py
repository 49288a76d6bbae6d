"""Read-only lookups the referral and clinical-routing handlers share: who looks after a patient
(from the active CareTeams the enrolment handler writes), the patient's active CarePlan, age."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir.resources.R4B.resource import Resource

from carecoord.core.handler import FhirReader
from carecoord.fhir.capabilities import declares_search_param, statement_of
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.terminology import ROLE_CARE_COORDINATOR, ROLE_PRIMARY_CARE_PHYSICIAN


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
    """The care manager and provider of the patient's active care teams: the standalone US Core
    CareTeams (found by `CareTeam?subject=`, and read by the reference each active CarePlan
    holds, for servers that cannot search CareTeam by patient), and CareTeams contained in plans
    written before carecoord wrote standalone ones; the latest started first. A plan without a
    care coordinator gives its author as care manager."""
    teams: list[tuple[tuple[str, str], Any]] = []
    plan_authors: list[tuple[tuple[str, str], str]] = []
    seen: set[str] = set()
    for plan in _active_plans(fhir, patient_id):
        for res in getattr(plan, "contained", None) or []:
            if res.get_resource_type() == "CareTeam":
                teams.append((_sort_key(plan), res))
        for link in getattr(plan, "careTeam", None) or []:
            reference = getattr(link, "reference", None) or ""
            if not reference.startswith("CareTeam/") or reference in seen:
                continue
            try:
                team = fhir.read("CareTeam", reference.removeprefix("CareTeam/"))
            except (FhirNotFound, FhirGone):
                continue
            seen.add(reference)
            if getattr(team, "status", None) in (None, "active"):
                teams.append((_sort_key(team), team))
        author = getattr(getattr(plan, "author", None), "reference", None)
        if author:
            plan_authors.append((_sort_key(plan), author))
    # Only where the server declares it: one that ignores the parameter would answer with every
    # CareTeam it has (the read by the plans' references above covers those servers).
    searchable = declares_search_param(fhir, "CareTeam", "subject") or statement_of(fhir) is None
    found = fhir.search("CareTeam", {"subject": f"Patient/{patient_id}"}) if searchable else []
    for team in found:
        if (
            team.get_resource_type() == "CareTeam"
            and f"CareTeam/{team.id}" not in seen
            and _references_patient(team, patient_id)
            and getattr(team, "status", None) in (None, "active")
        ):
            teams.append((_sort_key(team), team))
    care_manager: str | None = None
    provider: str | None = None
    for _, team in sorted(teams, key=lambda kt: kt[0], reverse=True):
        for p in getattr(team, "participant", None) or []:
            member = getattr(getattr(p, "member", None), "reference", None)
            if not member:
                continue
            roles = p.role if isinstance(p.role, list) else [p.role]
            codes = [c for r in roles if r for c in r.coding or []]
            if care_manager is None and any(ROLE_CARE_COORDINATOR.matches(c) for c in codes):
                care_manager = member
            if provider is None and any(ROLE_PRIMARY_CARE_PHYSICIAN.matches(c) for c in codes):
                provider = member
    if care_manager is None and plan_authors:
        care_manager = max(plan_authors)[1]
    return PatientTeam(care_manager, provider)


def _active_plans(fhir: FhirReader, patient_id: str) -> list[Resource]:
    return [
        p
        for p in fhir.search("CarePlan", {"subject": f"Patient/{patient_id}"})
        if p.get_resource_type() == "CarePlan"
        and _references_patient(p, patient_id)
        and getattr(p, "status", None) == "active"
    ]


def active_care_plan(fhir: FhirReader, patient_id: str) -> Resource | None:
    """The patient's earliest-started active CarePlan (stable choice when there are several)."""
    plans = _active_plans(fhir, patient_id)
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
