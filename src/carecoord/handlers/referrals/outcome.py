"""Gravity SDOH conformance helpers of the referrals handler: who requests a referral, what a
completed referral Task reports, and the care manager's review of the outcome.

- requester_for: a referral Task's requester must be an SDOHCC PractitionerRole or a US Core
  Organization (HL7/fhir-sdoh-clinicalcare input/fsh/profiles/
  SDOHCCTaskForReferralManagement.fsh: `requester only Reference(SDOHCCPractitionerRole or
  USCoreOrganizationProfile)`). The care manager's PractitionerRole at the configured practice
  Organization is found (PractitionerRole?practitioner=&organization=) or created idempotently
  (conditional on its business identifier), else the Organization is the requester.
- resulting_activities: Task.output with type SDOHCC temporary code `resulting-activity`
  (slices PerformedActivityReference, a Reference(SDOHCCProcedure), and PerformedActivityCode,
  a code; same file).
- outcome_review_task: on completion the Goal is not marked achieved by carecoord; the care
  manager reviews it (Task code review-referral-outcome, focus the Goal, basedOn the
  ServiceRequest, input the referral Task and the Procedures).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fhir.resources.R4B.resource import Resource

from carecoord.caremodel import terminology as t
from carecoord.caremodel.builders import work_task
from carecoord.caremodel.identifiers import add_create
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
    ]
    return revised(task, data)
