"""Capacity status in the referral ranking (SDOHCC STU 3).

HL7/fhir-sdoh-clinicalcare @6604b7a input/fsh/extensions/
SDOHCCExtensionHealthcareServiceCapacityStatus.fsh (capacityStatus 1..1, CodeableConcept,
extensible binding to input/fsh/valuesets/SDOHCCValueSetCapacityStatus.fsh: capacity,
no-capacity, waitlist, additional-assessment-required)."""

from __future__ import annotations

from fhir.resources.R4B.healthcareservice import HealthcareService

from carecoord.handlers.referrals.ranking import (
    capacity_of,
    capacity_rank,
    facts_of,
    rank,
)
from support.referrals import FOOD_NEED
from support.referrals import food_service as service

NEED = FOOD_NEED


def order(*services: HealthcareService) -> list[str]:
    return [c.service.removeprefix("HealthcareService/") for c in rank(services, NEED)]


def test_no_capacity_ranks_after_capacity_with_unknown_in_between() -> None:
    ranked = order(
        service("a-none", "no-capacity"),
        service("b-unknown"),
        service("c-waitlist", "waitlist"),
        service("d-has", "capacity"),
        service("e-assess", "additional-assessment-required"),
    )
    assert ranked == ["d-has", "b-unknown", "e-assess", "c-waitlist", "a-none"]


def test_capacity_comes_before_the_other_criteria_but_excludes_nobody() -> None:
    # A covered service with no capacity still ranks after an uncovered one that has capacity;
    # it stays a candidate (capacity changes; a rejection moves the loop on anyway).
    covered = {
        "contained": [{"resourceType": "Location", "id": "a", "address": {"postalCode": "62701"}}],
        "coverageArea": [{"reference": "#a"}],
    }
    ranked = order(
        service("a-covered-full", "no-capacity", **covered), service("b-open", "capacity")
    )
    assert ranked == ["b-open", "a-covered-full"]


def test_a_code_outside_the_value_set_or_another_system_is_unknown() -> None:
    # The binding is extensible: a local code says nothing carecoord can rank on.
    assert capacity_rank(capacity_of(service("x", "closed-for-holidays"))) == capacity_rank(None)
    other = service("y", "capacity").model_dump(mode="json", exclude_none=True)
    other["extension"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["system"] = "urn:x"
    assert capacity_of(HealthcareService.model_validate(other)) is None
    assert facts_of(service("z", "waitlist")).capacity == "waitlist"
    assert rank([service("z", "waitlist")], NEED)[0].capacity == capacity_rank("waitlist")
