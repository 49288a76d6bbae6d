"""Who looks after a patient, and under which plan: the one lookup every handler uses.

- `active_plans`: the patient's active CarePlans, ONE search (`CarePlan?patient&status=active`);
  where the server declares batch and CareTeam search by patient, the patient's CareTeams come
  in the same round trip. Asked again within an event, the same search is answered from the
  first answer (carecoord.fhir.event_reads), so handlers of one event share it.
- `prefetch_with_plans`: a handler's first batch (its own searches and `plan_searches`), with
  the plans' CareTeams where the server can answer them in it (see below).
- `care_team_of(plan)`: the care manager and provider of one plan's team.
- `patient_team`: the same over all the patient's active plans (the latest started first).

A team is the standalone US Core CareTeam a plan references (enrolment writes one), or a team
contained in the plan (plans written before carecoord wrote standalone ones); an inactive team
is skipped; a participant coded care coordinator is the care manager, one coded primary care
physician the provider (SNOMED, carecoord.caremodel.terminology). A plan whose team names no care
coordinator gives its author as care manager.

Round trips: a plan's standalone team is known only from the plan. Where the server declares
`_include=CarePlan:care-team` it comes with the plans; where it batches and declares
`CareTeam?patient`, beside them. Elsewhere (sekmet indexes neither) `prefetch_with_plans` adds
`CareTeam?_id=` of the teams the plans referenced when this client last read them
(carecoord.handlers.care.team_hints); only a team not seen before costs a read of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, NamedTuple

from fhir.resources.R4B.resource import Resource

from carecoord.caremodel import terminology as t
from carecoord.caremodel.terminology import ROLE_CARE_COORDINATOR, ROLE_PRIMARY_CARE_PHYSICIAN
from carecoord.core.handler import FhirReader
from carecoord.fhir.batch_reads import Search, declares_batch, search_together
from carecoord.fhir.capabilities import declares_include, declares_search_param, statement_of
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.reading import element, field, items
from carecoord.handlers.care.model import (
    CARE_PLAN_ID,
    codings,
    identifier_value,
    patient_of,
    reference_str,
    references,
)
from carecoord.handlers.care.team_hints import TeamHints, hints_of


class PatientTeam(NamedTuple):
    care_manager: str | None  # "Practitioner/<id>"
    provider: str | None


# The plans' standalone CareTeams in the same answer, where the server declares the include
# (R4 defines CarePlan's care-team parameter; sekmet does not index it): the team's id is known
# only from the plan, so without it an escalation or a referral reads the team separately.
PLAN_TEAM_INCLUDE = "CarePlan:care-team"


def plans_search(patient_id: str, fhir: object | None = None) -> Search:
    """The active-plans search, with the plans' CareTeams where `fhir`'s server declares
    `_include=CarePlan:care-team`; for a handler that prefetches it in a batch of its own."""
    params = [("patient", f"Patient/{patient_id}"), ("status", "active")]
    if fhir is not None and declares_include(fhir, "CarePlan", PLAN_TEAM_INCLUDE):
        params.append(("_include", PLAN_TEAM_INCLUDE))
    return ("CarePlan", params)


def team_search(fhir: FhirReader, patient_id: str) -> Search | None:
    """`CareTeam?patient=`, only where the server declares it: one that ignores the parameter
    would answer with every CareTeam it holds (the plans' references are read instead). A
    reader without a CapabilityStatement (a test double) is taken at its word."""
    if declares_search_param(fhir, "CareTeam", "patient") or statement_of(fhir) is None:
        return ("CareTeam", [("patient", f"Patient/{patient_id}")])
    return None


def plan_searches(fhir: FhirReader, patient_id: str) -> list[Search]:
    """The searches `active_plans` makes: the plans, and the patient's CareTeams where they come
    in the same batch. A handler that batches other searches of its own prefetches these with
    them (`prefetch_with_plans(fhir, patient_id, mine)`, which adds the plans' teams where these
    cannot bring them): asked again in the same event, a search is answered from the batch
    (carecoord.fhir.event_reads)."""
    teams = team_search(fhir, patient_id)
    if teams is not None and declares_batch(fhir):
        return [plans_search(patient_id, fhir), teams]
    return [plans_search(patient_id, fhir)]


def prefetch_with_plans(fhir: FhirReader, patient_id: str, searches: Sequence[Search]) -> None:
    """A handler's `searches` and `plan_searches` in ONE batch where the server declares
    batch (else nothing: each is asked for where the handler needs it). Where the plans' search
    cannot bring their CareTeams, the batch also searches `CareTeam?_id=` of the teams the
    patient's plans referenced when this client last read them (team_hints): reads of them are
    then answered from the batch (carecoord.fhir.event_reads)."""
    if not declares_batch(fhir):
        return
    search_together(fhir, [*searches, *plan_searches(fhir, patient_id), *_hinted(fhir, patient_id)])
    active_plans(fhir, patient_id)  # answered from the batch; remembers the plans' teams


def _hints(fhir: FhirReader, patient_id: str) -> TeamHints | None:
    """The client's team hints where they can save a read: the server batches, and the plans'
    search brings neither their teams (include) nor the patient's (`CareTeam?patient`)."""
    if not declares_batch(fhir) or declares_include(fhir, "CarePlan", PLAN_TEAM_INCLUDE):
        return None
    return hints_of(fhir) if team_search(fhir, patient_id) is None else None


def _hinted(fhir: FhirReader, patient_id: str) -> list[Search]:
    hints = _hints(fhir, patient_id)
    ids = hints.get(patient_id) if hints is not None else ()
    return [("CareTeam", [("_id", ",".join(ids))])] if ids else []


def active_plans(fhir: FhirReader, patient_id: str, *, managed: bool = False) -> list[Resource]:
    """The patient's active CarePlans (only carecoord's own, by business identifier, with
    `managed`), the earliest started first."""
    found = search_together(fhir, plan_searches(fhir, patient_id))[0]
    plans = sorted(
        (
            p
            for p in found
            if p.get_resource_type() == "CarePlan"
            and getattr(p, "status", None) == "active"
            and patient_of(p) == patient_id
        ),
        key=_started,
    )
    hints = _hints(fhir, patient_id)
    if hints is not None:
        hints.put(patient_id, [rid for plan in plans for rid in _team_ids(plan)])
    return [p for p in plans if not managed or identifier_value(p, CARE_PLAN_ID)]


def active_care_plan(fhir: FhirReader, patient_id: str) -> Resource | None:
    """The patient's earliest-started active CarePlan (stable choice when there are several)."""
    plans = active_plans(fhir, patient_id)
    return plans[0] if plans else None


def _started(resource: Any) -> tuple[str, str]:
    start = field(element(resource, "period"), "start")
    return (str(start or ""), str(getattr(resource, "id", None) or ""))


def _team_ids(plan: Any) -> list[str]:
    """The ids of the standalone CareTeams `plan` references, in its order."""
    teams = references(plan, "careTeam")
    return [r.removeprefix("CareTeam/") for r in teams if r.startswith("CareTeam/")]


def _teams(plan: Any, fhir: FhirReader | None) -> list[Any]:
    contained = getattr(plan, "contained", None) or []
    teams = [r for r in contained if r.get_resource_type() == "CareTeam"]
    if fhir is not None:
        for team_id in _team_ids(plan):
            try:
                teams.append(fhir.read("CareTeam", team_id))
            except (FhirNotFound, FhirGone):
                continue
    return [team for team in teams if getattr(team, "status", None) in (None, "active")]


def _members(teams: Iterable[Any]) -> PatientTeam:
    manager: str | None = None
    provider: str | None = None
    for team in teams:
        for part in items(element(team, "participant")):
            member = reference_str(field(part, "member"))
            if not member:
                continue
            role = field(part, "role")
            codes = [c for r in (role if isinstance(role, list) else [role]) for c in codings(r)]
            if manager is None and any(ROLE_CARE_COORDINATOR.matches(c) for c in codes):
                manager = member
            if provider is None and any(ROLE_PRIMARY_CARE_PHYSICIAN.matches(c) for c in codes):
                provider = member
    return PatientTeam(manager, provider)


def care_team_of(plan: Any, fhir: FhirReader | None = None) -> PatientTeam:
    """The care manager and provider of one plan's team; its standalone CareTeams are read
    through `fhir` (answered from the event's earlier searches where they returned them), only
    the contained ones without it."""
    team = _members(_teams(plan, fhir))
    return PatientTeam(team.care_manager or reference_str(element(plan, "author")), team.provider)


def patient_team(fhir: FhirReader, patient_id: str) -> PatientTeam:
    """The care manager and provider over the patient's active plans: their teams, the latest
    started first (with the patient's other active CareTeams where the server can search them);
    failing a care coordinator, the latest plan's author."""
    plans: Sequence[Any] = active_plans(fhir, patient_id)
    teams = [team for plan in plans for team in _teams(plan, fhir)]
    search = team_search(fhir, patient_id)
    if search is not None:
        have = {getattr(team, "id", None) for team in teams}
        teams += [
            team
            for team in fhir.search(*search)
            if team.get_resource_type() == "CareTeam"
            and team.id not in have
            and patient_of(team) == patient_id
            and element(team, "status") in (None, "active")
        ]
    found = _members(sorted(teams, key=_started, reverse=True))
    authors = [a for a in (reference_str(element(p, "author")) for p in reversed(plans)) if a]
    return PatientTeam(found.care_manager or (authors[0] if authors else None), found.provider)


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


def program_of(plan: Any) -> str | None:
    """The care program a CarePlan (or a program Consent) is categorised under."""
    for category in items(element(plan, "category")):
        for coding in codings(category):
            if field(coding, "system") == t.CARE_PROGRAM_SYSTEM:
                return str(field(coding, "code"))
    return None
