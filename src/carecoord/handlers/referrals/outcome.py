"""Gravity SDOH conformance helpers of the referrals handler: who requests a referral, what a
completed referral Task reports, and the care manager's review of the outcome.

- requester_for: a referral Task's requester must be an SDOHCC PractitionerRole or a US Core
  Organization (HL7/fhir-sdoh-clinicalcare @6604b7a input/fsh/profiles/
  SDOHCCTaskForReferralManagement.fsh: `requester only Reference(SDOHCCPractitionerRole or
  USCoreOrganizationProfile)`). The care manager's PractitionerRole at the configured practice
  Organization is found (PractitionerRole?practitioner=&organization=) or created idempotently
  (conditional on its business identifier), else the Organization is the requester.
- resulting_activities: Task.output with type SDOHCC temporary code `resulting-activity`
  (slices PerformedActivityReference, a Reference(SDOHCCProcedure), and PerformedActivityCode,
  a code; same file).
- enrollment_statuses: SDOHCC STU 3 (HL7/fhir-sdoh-clinicalcare @6604b7a): a CBO reports an
  individual's enrollment in its program as an SDOHCC Observation Program Enrollment Status
  (input/fsh/profiles/SDOHCCObservationEnrollmentStatus.fsh: category program-enrollment, value
  from SDOHCCValueSetEnrollmentStatus) referenced from Task.output[AdditionalContent] (type
  `additional-content`, SDOHCCTaskForReferralManagement.fsh). Each such output naming an
  Observation is read; one that claims the profile or carries the program-enrollment category,
  is not entered-in-error/cancelled and has a coded value is the enrollment status.
- outcome_review_task: on completion the Goal is not marked achieved by carecoord; the care
  manager reviews it (Task code review-referral-outcome, focus the Goal, basedOn the
  ServiceRequest, input the referral Task, the Procedures and the enrollment statuses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.resource import Resource

from carecoord.caremodel import terminology as t
from carecoord.caremodel.builders import work_task
from carecoord.caremodel.identifiers import add_create
from carecoord.caremodel.profiles import SDOHCC_OBSERVATION_ENROLLMENT, claimed
from carecoord.core.effects import Effects
from carecoord.core.handler import FhirReader
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.models import revised, to_json
from carecoord.handlers.care.roles import care_manager_role


def requester_for(
    fx: Effects,
    fhir: FhirReader,
    care_manager: str | None,
    organization: str | None,
    fallback: str | None,
    phone: str | None = None,
) -> str | None:
    """The referral's requester: a PractitionerRole or an Organization reference (or the
    urn:uuid of a PractitionerRole created in `fx`); None when there is none to be had. A role
    is created only when it can conform (US Core pd-1: a telecom): `phone`, else the practice
    Organization's telecom; otherwise the Organization requests."""
    if care_manager and care_manager.startswith("PractitionerRole/"):
        return care_manager
    if care_manager and care_manager.startswith("Practitioner/") and organization:
        for role in fhir.search(
            "PractitionerRole",
            {"practitioner": care_manager, "organization": organization, "active": "true"},
        ):
            if (
                role.get_resource_type() == "PractitionerRole"
                and getattr(getattr(role, "practitioner", None), "reference", None) == care_manager
                and getattr(getattr(role, "organization", None), "reference", None) == organization
                and getattr(role, "active", True) is not False
            ):
                return f"PractitionerRole/{role.id}"
        telecom = _practice_telecom(fhir, organization, phone)
        if telecom:
            return add_create(
                fx,
                care_manager_role(
                    practitioner=care_manager, organization=organization, telecom=telecom
                ),
            )
        return organization
    if organization:
        return organization
    if fallback and fallback.startswith(("PractitionerRole/", "Organization/")):
        return fallback
    return None


def _practice_telecom(
    fhir: FhirReader, organization: str, phone: str | None
) -> list[dict[str, Any]]:
    if phone:
        return [{"system": "phone", "value": phone, "use": "work"}]
    try:
        org = fhir.read("Organization", organization.removeprefix("Organization/"))
    except (FhirNotFound, FhirGone):
        return []
    return [
        {k: v for k, v in to_json_item(c).items() if k in ("system", "value", "use")}
        for c in getattr(org, "telecom", None) or []
        if getattr(c, "value", None)
    ]


def to_json_item(item: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = item.model_dump(mode="json", exclude_none=True)
    return dumped


def resulting_activities(task: Resource) -> tuple[list[str], list[dict[str, Any]]]:
    """(Procedure references, CodeableConcepts) of the Task's resulting-activity outputs."""
    procedures: list[str] = []
    codes: list[dict[str, Any]] = []
    for out in to_json(task).get("output") or []:
        if not t.concept_has(out.get("type"), t.SDOHCC_RESULTING_ACTIVITY):
            continue
        reference = (out.get("valueReference") or {}).get("reference")
        if isinstance(reference, str) and reference.split("/")[-2:-1] == ["Procedure"]:
            procedures.append(reference)
        elif isinstance(out.get("valueCodeableConcept"), dict):
            codes.append(out["valueCodeableConcept"])
    return procedures, codes


@dataclass(frozen=True)
class Enrollment:
    """An enrollment status a CBO reported on its referral Task."""

    observation: str  # "Observation/<id>"
    value: dict[str, Any]  # the Observation's valueCodeableConcept
    code: str | None  # its SDOHCCValueSetProgramEnrollmentStatus code, if it has one


ENROLLMENT_CODES = frozenset(c.code for c in t.ENROLLMENT_STATUSES)


def additional_content(task: Resource) -> list[str]:
    """References of the Task's output[AdditionalContent] (type additional-content)."""
    found: list[str] = []
    for out in to_json(task).get("output") or []:
        if t.concept_has(out.get("type"), t.SDOHCC_ADDITIONAL_CONTENT):
            reference = (out.get("valueReference") or {}).get("reference")
            if isinstance(reference, str) and reference:
                found.append(reference)
    return found


def enrollment_of(observation: Mapping[str, Any]) -> Enrollment | None:
    """The enrollment status an Observation's JSON reports (None: not one)."""
    if observation.get("resourceType") != "Observation":
        return None
    profiled = SDOHCC_OBSERVATION_ENROLLMENT in claimed(observation)
    categorised = any(
        t.concept_has(c, t.ENROLLMENT_CATEGORY) for c in observation.get("category") or []
    )
    value = observation.get("valueCodeableConcept")
    if not (profiled or categorised) or not isinstance(value, dict):
        return None
    if observation.get("status") in ("entered-in-error", "cancelled"):
        return None
    code = next(
        (
            str(c.get("code"))
            for c in value.get("coding") or []
            if c.get("system") == t.SDOHCC_TEMPORARY_CODES and c.get("code") in ENROLLMENT_CODES
        ),
        None,
    )
    return Enrollment(f"Observation/{observation.get('id')}", value, code)


def enrollment_statuses(task: Resource, fhir: FhirReader) -> list[Enrollment]:
    """The enrollment statuses the Task's output[AdditionalContent] Observations report (each
    read from `fhir`; one gone since is skipped)."""
    found: list[Enrollment] = []
    for reference in additional_content(task):
        rtype, _, rid = reference.split("/_history/")[0].rpartition("/")
        if not rtype.endswith("Observation") or not rid:
            continue
        try:
            observation = to_json(fhir.read("Observation", rid))
        except (FhirNotFound, FhirGone):
            continue
        enrollment = enrollment_of(observation)
        if enrollment is not None:
            found.append(enrollment)
    return found


def outcome_review_task(
    *,
    key: str,
    patient: str,
    owner: str,
    service_request: str,
    goals: Sequence[str],
    referral_task: str,
    procedures: Sequence[str],
    authored_on: datetime,
    enrollments: Sequence[Enrollment] = (),
) -> Resource:
    """The care manager's Task to review a completed referral's outcome against the Goal.
    Identifier: care-task | patient : review-referral-outcome : the ServiceRequest key."""
    task: Resource = work_task(
        key=key,
        patient=patient,
        work=t.TASK_REVIEW_REFERRAL_OUTCOME,
        owner=owner,
        status="requested",
        authored_on=authored_on,
    )
    data = to_json(task)
    data["focus"] = {"reference": goals[0] if goals else service_request}
    data["basedOn"] = [{"reference": service_request}]
    data["input"] = [
        {"type": {"text": "referral task"}, "valueReference": {"reference": referral_task}},
        *(
            {"type": t.SDOHCC_RESULTING_ACTIVITY.concept_json(), "valueReference": {"reference": p}}
            for p in procedures
        ),
        *(
            {
                "type": t.SDOHCC_ADDITIONAL_CONTENT.concept_json(),
                "valueReference": {"reference": e.observation},
            }
            for e in enrollments
        ),
    ]
    return revised(task, data)
