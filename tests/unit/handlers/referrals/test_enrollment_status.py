"""The CBO's enrollment status on its referral Task (SDOHCC STU 3).

HL7/fhir-sdoh-clinicalcare @6604b7a: input/fsh/profiles/SDOHCCTaskForReferralManagement.fsh
(output[AdditionalContent]: type additional-content, a Reference to an SDOHCC Observation
Program Enrollment Status among others) and input/fsh/profiles/
SDOHCCObservationEnrollmentStatus.fsh (category program-enrollment, value from
input/fsh/valuesets/SDOHCCValueSetEnrollmentStatus.fsh)."""

from __future__ import annotations

from typing import Any

from carecoord.caremodel import terminology as t
from carecoord.caremodel.profiles import SDOHCC_OBSERVATION_ENROLLMENT
from carecoord.fhir.models import to_json
from carecoord.handlers.referrals.outcome import enrollment_of
from carecoord.testing.fhir import InMemoryFhir
from support.referrals import referred, status_changed


def enrollment_observation(code: str = "enrolled", **extra: Any) -> dict[str, Any]:
    """Shaped like the IG's SDOHCC-ObservationEnrollmentStatusExample.fsh."""
    return {
        "resourceType": "Observation",
        "id": f"enrol-{code}",
        "meta": {"profile": [SDOHCC_OBSERVATION_ENROLLMENT]},
        "status": "final",
        "category": [
            {"coding": [{"system": t.US_CORE_CATEGORY_SYSTEM, "code": "sdoh"}]},
            t.ENROLLMENT_CATEGORY.concept_json(),
        ],
        "code": {"coding": [{"system": t.SNOMED, "code": "481021000124104"}]},
        "subject": {"reference": "Patient/p1"},
        "valueCodeableConcept": {"coding": [{"system": t.SDOHCC_TEMPORARY_CODES, "code": code}]},
        **extra,
    }


def cbo_reports(fhir: InMemoryFhir, task: Any, status: str, observation: dict[str, Any]) -> None:
    fhir.put(observation)
    data = to_json(fhir.read("Task", str(task.id)))
    data["status"] = status
    data["output"] = [
        {
            "type": t.SDOHCC_ADDITIONAL_CONTENT.concept_json(),
            "valueReference": {"reference": f"Observation/{observation['id']}"},
        }
    ]
    fhir.put(data)


def activity(fhir: InMemoryFhir) -> Any:
    (plan,) = fhir.resources("CarePlan")
    (found,) = plan.activity
    return found


def test_in_progress_with_an_enrollment_status_is_recorded_on_the_care_plan() -> None:
    fhir, task = referred(plan=True)
    status_changed(fhir, task, "accepted", "acc", set_by="owner")
    cbo_reports(fhir, task, "in-progress", enrollment_observation("not-enrolled-on-waitlist"))
    run = status_changed(fhir, task, "in-progress", "wip", set_by="owner")
    assert run.emitted == []
    found = activity(fhir)
    assert [o.reference for o in found.outcomeReference] == [
        "Observation/enrol-not-enrolled-on-waitlist"
    ]
    assert found.outcomeCodeableConcept[0].coding[0].code == "not-enrolled-on-waitlist"
    assert fhir.resources("ServiceRequest")[0].status == "active"  # still the CBO's work


def test_completed_with_enrollment_reports_it_in_the_outcome_and_the_review() -> None:
    fhir, task = referred(plan=True)
    for step in ("accepted", "in-progress"):
        status_changed(fhir, task, step, step, set_by="owner")
    cbo_reports(fhir, task, "completed", enrollment_observation("enrolled"))
    status_changed(fhir, task, "completed", "done", set_by="owner")
    found = activity(fhir)
    assert [o.reference for o in found.outcomeReference] == [
        "Observation/enrol-enrolled",
        f"Task/{task.id}",
    ]
    codes = [c.coding[0].code if c.coding else c.text for c in found.outcomeCodeableConcept]
    assert codes == ["Community referral completed", "enrolled"]
    (review,) = [
        tk
        for tk in fhir.resources("Task")
        if t.concept_has(tk.code, t.TASK_REVIEW_REFERRAL_OUTCOME)
    ]
    inputs = [i.valueReference.reference for i in review.input if i.valueReference]
    assert "Observation/enrol-enrolled" in inputs


def test_other_additional_content_is_not_an_enrollment_status() -> None:
    fhir, task = referred(plan=True)
    status_changed(fhir, task, "accepted", "acc", set_by="owner")
    plain = enrollment_observation("enrolled", id="screening")
    del plain["meta"]
    plain["category"] = plain["category"][:1]  # an SDOH Observation, not program enrollment
    cbo_reports(fhir, task, "in-progress", plain)
    status_changed(fhir, task, "in-progress", "wip", set_by="owner")
    assert "outcomeReference" not in to_json(activity(fhir))


def test_enrollment_of_reads_the_profile_or_the_category() -> None:
    by_profile = enrollment_observation("enrolled")
    by_profile["category"] = by_profile["category"][:1]
    assert enrollment_of(by_profile) is not None
    by_category = enrollment_observation("not-enrolled")
    del by_category["meta"]
    found = enrollment_of(by_category)
    assert found is not None and found.code == "not-enrolled"
    assert enrollment_of(enrollment_observation(status="entered-in-error")) is None
    local = enrollment_observation("maybe")
    assert enrollment_of(local) is not None and enrollment_of(local).code is None  # type: ignore[union-attr]
    assert enrollment_of({**by_profile, "valueCodeableConcept": None}) is None
