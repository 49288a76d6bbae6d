"""Content-rich referral (SDOHCC STU 3): HL7/fhir-sdoh-clinicalcare @6604b7a
input/fsh/profiles/SDOHCCTaskForReferralManagement.fsh slices Task.input: AdditionalContent
(type additional-content, any Reference); its intro page ("Content-Rich Referral") has the
requester attach what led to the referral. carecoord attaches the SDOH Condition."""

from __future__ import annotations

from typing import Any

from carecoord.caremodel import profiles
from carecoord.caremodel import terminology as t
from carecoord.fhir.models import to_json
from support.referrals import referral_tasks, referred, status_changed


def attached(task: Any) -> list[str]:
    return [
        i.valueReference.reference
        for i in task.input or []
        if t.concept_has(i.type, t.SDOHCC_ADDITIONAL_CONTENT) and i.valueReference
    ]


def test_every_attempt_carries_the_sdoh_condition_as_additional_content() -> None:
    fhir, first = referred()
    (condition,) = fhir.resources("Condition")
    assert attached(first) == [f"Condition/{condition.id}"]
    status_changed(fhir, first, "rejected", "rej", set_by="owner", reason="full")
    second = referral_tasks(fhir)[1]
    assert attached(second) == [f"Condition/{condition.id}"]
    for task in (first, second):
        assert profiles.check(to_json(fhir.read("Task", str(task.id)))) == []
