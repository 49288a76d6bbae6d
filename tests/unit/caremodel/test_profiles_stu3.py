"""The SDOHCC STU 3 rules of the conformance suite (caremodel.profiles), each read from
HL7/fhir-sdoh-clinicalcare at commit 6604b7a (3.0.0); the file is named per test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from carecoord.caremodel import profiles
from carecoord.caremodel import terminology as t
from support.conformance import referral_task_json as task
from support.conformance import violated_paths as paths

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)


def content(reference: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": t.SDOHCC_ADDITIONAL_CONTENT.concept_json()}
    if reference:
        item["valueReference"] = {"reference": reference}
    else:
        item["valueString"] = "see the attached assessment"
    return item


def test_the_rules_cite_the_stu3_commit() -> None:
    assert profiles.SDOHCC_COMMIT.startswith("6604b7a")
    sources = {r.source for _, rules in profiles.RULES.values() for r in rules}
    sdohcc = [s for s in sources if s.startswith("HL7/fhir-sdoh-clinicalcare")]
    assert sdohcc and all(s.startswith("HL7/fhir-sdoh-clinicalcare@6604b7a ") for s in sdohcc)


def test_task_input_additional_content_is_a_reference_to_any_resource() -> None:
    """SDOHCCTaskForReferralManagement.fsh: input[AdditionalContent].value[x] only
    Reference(Resource)."""
    assert paths(task(input=[content("QuestionnaireResponse/qr1")])) == set()
    assert paths(task(input=[content("Condition/c1")])) == set()
    assert paths(task(input=[content(None)])) == {"input:AdditionalContent"}


def test_task_output_additional_content_targets() -> None:
    """SDOHCCTaskForReferralManagement.fsh: output[AdditionalContent].valueReference only
    Reference(SDOHCCObservationProgramEnrollmentStatus or SDOHCCObservationAssessment or
    SDOHCCObservationScreeningResponse or SDOHCCGoal or SDOHCCCondition or QuestionnaireResponse
    or CarePlan)."""
    for ok in (
        "Observation/o1",
        "Goal/g1",
        "Condition/c1",
        "QuestionnaireResponse/q",
        "CarePlan/p",
    ):
        assert paths(task(output=[content(ok)])) == set(), ok
    assert paths(task(output=[content("Procedure/p1")])) == {"output:AdditionalContent"}
    assert paths(task(output=[content(None)])) == {"output:AdditionalContent"}


def enrollment(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {"profile": [profiles.SDOHCC_OBSERVATION_ENROLLMENT]},
        "status": "final",
        "category": [
            {"coding": [{"system": t.US_CORE_CATEGORY_SYSTEM, "code": "sdoh"}]},
            t.ENROLLMENT_CATEGORY.concept_json(),
        ],
        "code": {"coding": [{"system": t.SNOMED, "code": "481021000124104"}]},
        "subject": {"reference": "Patient/p1"},
        "valueCodeableConcept": {"coding": [t.ENROLLMENT_STATUSES[0].json()]},
        "focus": [{"reference": "HealthcareService/hacc"}],
    }
    return {k: v for k, v in {**data, **over}.items() if v is not None}  # None: left out


def test_enrollment_status_observation() -> None:
    """SDOHCCObservationEnrollmentStatus.fsh: value[x] 1..; focus only
    Reference(SDOHCCHealthcareService); category[us-core] 1..* with sdoh (SDOH-Obs-4.fsh)."""
    assert paths(enrollment()) == set()
    assert paths(enrollment(valueCodeableConcept=None)) == {"value[x]"}
    assert paths(enrollment(focus=[{"reference": "Organization/cbo"}])) == {"focus"}
    only_enrollment = enrollment(category=[t.ENROLLMENT_CATEGORY.concept_json()])
    assert paths(only_enrollment) == {"category:us-core (SDOH-Obs-4)"}
    assert profiles.SDOHCC_OBSERVATION_ENROLLMENT not in profiles.CLAIMED_PROFILES


SERVICE_TYPE = "http://terminology.hl7.org/CodeSystem/service-type"


def service(**over: Any) -> dict[str, Any]:
    """Like the IG's SDOHCC-HealthcareServiceSocialCareProgram.fsh."""
    data: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "meta": {"profile": [profiles.SDOHCC_HEALTHCARE_SERVICE_REFERRAL]},
        "extension": [
            {
                "url": t.CAPACITY_STATUS_EXTENSION,
                "extension": [
                    {"url": "capacityStatus", "valueCodeableConcept": t.CAPACITY_HAS.concept_json()}
                ],
            }
        ],
        "active": True,
        "category": [{"coding": [t.SERVICE_CATEGORY_SDOH.json()]}],
        "type": [{"coding": [{"system": SERVICE_TYPE, "code": "252"}]}],
        "name": "HACC",
    }
    return {k: v for k, v in {**data, **over}.items() if v is not None}  # None: left out


def test_healthcare_service_for_referral_management() -> None:
    """SDOHCCHealthcareServiceForReferralManagement.fsh: capacity-status 1..1, active 1.. =
    true, category 1.. with a ServiceCategory coding, type 1..1, name 1..; and
    SDOHCCExtensionHealthcareServiceCapacityStatus.fsh: capacityStatus 1..1 CodeableConcept."""
    assert paths(service()) == set()
    assert paths(service(extension=[])) == {"extension:capacity-status"}
    no_status = [{"url": t.CAPACITY_STATUS_EXTENSION, "extension": [
        {"url": "capacityNotes", "valueString": "15 waiting"}]}]  # fmt: skip
    assert paths(service(extension=no_status)) == {"extension:capacity-status"}
    assert paths(service(active=False)) == {"active"}
    assert paths(service(type=None)) == {"type"}
    assert paths(service(name=None)) == {"name"}
    assert paths(service(category=[{"text": "food"}])) == {"category.coding:ServiceCategory"}


def test_carecoord_claims_the_sdohcc_profiles_at_version_3_0_0() -> None:
    """sushi-config.yaml @6604b7a: version 3.0.0, canonical http://hl7.org/fhir/us/
    sdoh-clinicalcare (the profile URLs are unchanged from STU 2); US Core claims stay as they
    are."""
    claims = task()["meta"]["profile"]
    assert claims == [f"{profiles.SDOHCC_TASK_FOR_REFERRAL}|3.0.0"]
    assert profiles.claimed(task()) == [profiles.SDOHCC_TASK_FOR_REFERRAL]
    assert profiles.check(task()) == []
    assert profiles.versioned(profiles.US_CORE_CARE_PLAN) == profiles.US_CORE_CARE_PLAN
    assert profiles.versioned(f"{profiles.SDOHCC_GOAL}|2.3.0") == f"{profiles.SDOHCC_GOAL}|3.0.0"
