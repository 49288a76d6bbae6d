"""Builders for social needs and community referrals, as the Gravity SDOH Clinical Care IG shows.

Builds, each with its deterministic business identifier:
- sdoh_condition: Condition (SDOH health concern: categories health-concern, sdoh, the domain)
- sdoh_goal: Goal addressing that Condition (domain category, SNOMED goal where Gravity has one)
- referral_service_request: ServiceRequest (category SNOMED 410606002 + domain; code per domain;
  reason the Condition; performer the CBO)
- referral_task: Task (code fulfill, intent order, focus the ServiceRequest, owner the CBO
  Organization, requester, authoredOn) — change its status with
  carecoord.caremodel.workflow.transition
  (actor="requester"/"owner")
- sdoh_domain: look up a Gravity domain code (e.g. "food-insecurity") in the terminology

All arguments are keyword-only; references are "Type/id" or urn:uuid strings. `version` selects
R4 (default) or R5. `key` is the business key that makes the identifier (e.g. the event id of the
need-identified event): the same key gives the same identifier, so a replay creates nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Literal

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.goal import Goal
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from carecoord.caremodel import profiles as p
from carecoord.caremodel import terminology as t
from carecoord.caremodel._build import (
    codeable_reference,
    concept,
    finish,
    identifiers,
    instant,
    ref,
)
from carecoord.caremodel._build import ref_id as _rid
from carecoord.caremodel.workflow import check_task_status
from carecoord.fhir.models import DEFAULT_VERSION, FhirVersion

REQUESTER = ("Practitioner", "PractitionerRole", "Organization")
# SDOHCCTaskForReferralManagement.fsh: requester only Reference(SDOHCCPractitionerRole or
# USCoreOrganizationProfile).
TASK_REQUESTER = ("PractitionerRole", "Organization")
PERFORMER = ("Organization", "HealthcareService", "PractitionerRole", "Practitioner")


def sdoh_domain(domain: str) -> t.SdohDomain:
    """The SdohDomain for a Gravity category code; ValueError naming the known ones otherwise."""
    try:
        return t.SDOH_DOMAINS[domain]
    except KeyError:
        known = ", ".join(sorted(t.SDOH_DOMAINS))
        raise ValueError(f"unknown SDOH domain {domain!r}; known: {known}") from None


def sdoh_condition(
    *,
    key: str,
    patient: str,
    domain: str,
    identified_at: datetime | date | None = None,
    evidence: Sequence[str] = (),
    asserter: str | None = None,
    confirmed: bool = False,
    version: FhirVersion = DEFAULT_VERSION,
) -> Condition:
    """SDOH health concern: Condition (clinicalStatus active, verificationStatus unconfirmed unless
    `confirmed`, category health-concern + sdoh + the Gravity domain, code the domain's SNOMED /
    ICD-10-CM codings, evidence.detail -> e.g. the screening Observation/QuestionnaireResponse).
    Identifier: sdoh-condition | patient : domain : key."""
    d = sdoh_domain(domain)
    onset = instant(identified_at) if identified_at else None
    data: dict[str, Any] = {
        "resourceType": "Condition",
        "meta": p.meta_profile(p.SDOHCC_CONDITION),
        "identifier": identifiers("sdoh-condition", _rid(patient), d.key, key),
        "clinicalStatus": concept(t.CONDITION_ACTIVE),
        "verificationStatus": concept(
            t.CONDITION_CONFIRMED if confirmed else t.CONDITION_UNCONFIRMED
        ),
        "category": [
            concept(t.CONDITION_HEALTH_CONCERN),
            concept(t.CONDITION_SDOH),
            concept(d.category),
        ],
        "code": concept(*d.conditions, text=d.condition.display),
        "subject": ref(patient, expect="Patient"),
        "onsetDateTime": onset,
        "recordedDate": onset,
        "asserter": ref(asserter, expect=("Practitioner", "PractitionerRole", "Patient"))
        if asserter
        else None,
    }
    if evidence:
        if version == "R4":
            data["evidence"] = [{"detail": [ref(e) for e in evidence]}]
        else:
            data["evidence"] = [codeable_reference(e, version) for e in evidence]
    return finish(Condition, data, version)


def sdoh_goal(
    *,
    key: str,
    patient: str,
    domain: str,
    condition: str,
    start: date | None = None,
    due: date | None = None,
    version: FhirVersion = DEFAULT_VERSION,
) -> Goal:
    """Goal for an SDOH concern (Gravity SDOHCC Goal): lifecycleStatus active, achievementStatus
    in-progress, category the domain, description the domain's goal code (e.g. SNOMED 1078229009
    food security) or text, addresses the Condition. Identifier: sdoh-goal | patient : domain : key.
    """
    d = sdoh_domain(domain)
    desc = concept(d.goal, text=d.goal_text) if d.goal else concept(text=d.goal_text)
    data: dict[str, Any] = {
        "resourceType": "Goal",
        "meta": p.meta_profile(p.SDOHCC_GOAL),
        "identifier": identifiers("sdoh-goal", _rid(patient), d.key, key),
        "lifecycleStatus": "active",
        "achievementStatus": concept(t.GOAL_IN_PROGRESS),
        "category": [concept(d.category)],
        "description": desc,
        "subject": ref(patient, expect="Patient"),
        "startDate": start.isoformat() if start else None,
        "target": [{"dueDate": due.isoformat()}] if due else [],
        "addresses": [ref(condition, expect="Condition")],
    }
    return finish(Goal, data, version)


def referral_service_request(
    *,
    key: str,
    patient: str,
    domain: str,
    requester: str,
    performer: str | None = None,
    reasons: Sequence[str] = (),
    goals: Sequence[str] = (),
    authored_on: datetime | None = None,
    status: Literal["draft", "active", "on-hold", "revoked", "completed"] = "active",
    consents: Sequence[str] = (),
    contact_prohibited: bool = False,
    occurrence_start: date | datetime | None = None,
    version: FhirVersion = DEFAULT_VERSION,
) -> ServiceRequest:
    """Referral to a community resource (SDOHCC ServiceRequest): status active, intent order,
    category SNOMED 410606002 "Social service procedure" + the Gravity domain, code the domain's
    service, reasonReference the SDOH Condition(s), performer the CBO Organization or
    HealthcareService, Goals in the pertainsToGoal extension, SDOHCC Consents as supportingInfo,
    occurrencePeriod from `occurrence_start` (default authoredOn), orderDetail
    contacting-subject-prohibited when `contact_prohibited` (input/fsh/profiles/
    SDOHCCServiceRequest.fsh). Identifier: referral | patient : domain : key."""
    d = sdoh_domain(domain)
    code = concept(d.service)
    start = occurrence_start or authored_on
    data: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": p.meta_profile(p.SDOHCC_SERVICE_REQUEST),
        "extension": [
            {"url": p.PERTAINS_TO_GOAL, "valueReference": ref(g, expect="Goal")} for g in goals
        ],
        "identifier": identifiers("referral", _rid(patient), d.key, key),
        "status": status,
        "intent": "order",
        "priority": "routine",
        "category": [concept(t.SR_CATEGORY_SOCIAL_SERVICE), concept(d.category)],
        "code": code if version == "R4" else {"concept": code},
        "subject": ref(patient, expect="Patient"),
        "authoredOn": instant(authored_on) if authored_on else None,
        "requester": ref(requester, expect=REQUESTER),
        "performer": [ref(performer, expect=PERFORMER)] if performer else [],
        "occurrencePeriod": {"start": instant(start)} if start else None,
        "orderDetail": [concept(t.SDOHCC_CONTACTING_SUBJECT_PROHIBITED)]
        if contact_prohibited
        else [],
    }
    for r in reasons:
        ref(r, expect=("Condition", "Observation"))
    if version == "R4":
        data["reasonReference"] = [ref(r) for r in reasons]
        data["supportingInfo"] = [ref(c, expect="Consent") for c in consents]
    else:
        data["reason"] = [codeable_reference(r, version) for r in reasons]
        data["supportingInfo"] = [codeable_reference(c, version) for c in consents]
    return finish(ServiceRequest, data, version)


def referral_task(
    *,
    key: str,
    patient: str,
    domain: str,
    service_request: str,
    owner: str,
    requester: str,
    authored_on: datetime,
    status: str = "requested",
    version: FhirVersion = DEFAULT_VERSION,
) -> Task:
    """The referral's fulfilment Task (Gravity SDOHCC Task for Referral Management): code fulfill,
    intent order, priority routine, focus the ServiceRequest, for the patient, owner the CBO
    Organization, requester (a PractitionerRole or an Organization, as the profile requires),
    authoredOn; status requested (or draft). Identifier: referral-task | patient : domain : key.
    """
    d = sdoh_domain(domain)
    if check_task_status(status) not in ("draft", "requested"):
        raise ValueError("a referral Task starts as draft or requested (the requester's statuses)")
    data: dict[str, Any] = {
        "resourceType": "Task",
        "meta": p.meta_profile(p.SDOHCC_TASK_FOR_REFERRAL),
        "identifier": identifiers("referral-task", _rid(patient), d.key, key),
        "status": status,
        "intent": "order",
        "priority": "routine",
        "code": concept(t.TASK_FULFILL),
        "focus": ref(service_request, expect="ServiceRequest"),
        "for": ref(patient, expect="Patient"),
        "authoredOn": instant(authored_on),
        "lastModified": instant(authored_on),
        "requester": ref(requester, expect=TASK_REQUESTER),
        "owner": ref(owner, expect=("Organization", "HealthcareService", "PractitionerRole")),
    }
    return finish(Task, data, version)
