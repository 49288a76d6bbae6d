"""The conformance suite (caremodel.profiles) on builder output, and on the shapes carecoord
wrote before it followed the profiles: those must fail (a Practitioner requester, a contained
CareTeam, a Goal in supportingInfo, received/ready statuses, no meta.profile).

Every rule names the IG file it comes from (HL7/fhir-sdoh-clinicalcare input/fsh/..., HL7/US-Core
input/resources-yaml/...); the integration tests run the same checks on every resource they leave
on the FHIR server (tests/integration/conftest.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from carecoord.caremodel import builders as care
from carecoord.caremodel import profiles
from carecoord.caremodel import terminology as t
from carecoord.fhir.models import to_json
from carecoord.handlers.care import roles
from carecoord.handlers.referrals import builders as referral
from carecoord.handlers.referrals import sdoh_consent
from support.conformance import referral_task_json as task
from support.conformance import violated_paths as paths

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)


def test_every_builder_of_a_claimed_profile_conforms() -> None:
    built = [
        task(),
        to_json(
            referral.referral_service_request(
                key="k",
                patient="Patient/p1",
                domain="housing-instability",
                requester="PractitionerRole/r",
                performer="Organization/cbo",
                reasons=["Condition/c"],
                goals=["Goal/g"],
                authored_on=NOW,
                contact_prohibited=True,
            )
        ),
        to_json(
            referral.sdoh_goal(
                key="k", patient="Patient/p1", domain="food-insecurity", condition="Condition/c"
            )
        ),
        to_json(referral.sdoh_condition(key="k", patient="Patient/p1", domain="food-insecurity")),
        to_json(
            roles.care_manager_role(
                practitioner="Practitioner/cm",
                organization="Organization/o",
                telecom=[{"system": "phone", "value": "555"}],
            )
        ),
        to_json(
            care.care_team(
                patient="Patient/p1",
                program="CCM",
                start=date(2026, 11, 2),
                care_manager="Practitioner/cm",
                provider="Practitioner/dr",
            )
        ),
        to_json(
            care.care_plan(
                patient="Patient/p1",
                program="CCM",
                start=date(2026, 11, 2),
                care_team="CareTeam/t1",
            )
        ),
        consent(),
        consent(document="QuestionnaireResponse/signed"),
    ]
    for resource in built:
        assert profiles.claimed(resource), resource["resourceType"]
        assert profiles.check(resource) == [], resource["resourceType"]


def consent(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "key": "k",
        "patient": "Patient/p1",
        "domain": "food-insecurity",
        "organization": "Organization/practice",
        "day": date(2026, 11, 2),
        "method": "verbal",
        "recorded_by": "Practitioner/cm",
        **over,
    }
    return to_json(sdoh_consent.sdoh_consent(**args))


@pytest.mark.parametrize(
    ("element", "path"),
    [
        ("organization", "organization"),
        ("dateTime", "dateTime"),
        ("patient", "patient"),
        ("category", "category:IDSCL"),
        ("sourceAttachment", "source[x]"),
        ("policyRule", "policy|policyRule (ppc-1)"),
    ],
)
def test_an_sdohcc_consent_without_a_required_element_fails(element: str, path: str) -> None:
    incomplete = consent()
    del incomplete[element]
    assert path in paths(incomplete)


def test_an_sdohcc_consent_with_the_wrong_targets_or_category_fails() -> None:
    assert "organization" in paths(consent() | {"organization": [{"reference": "Practitioner/x"}]})
    assert "source[x]" in paths(
        {k: v for k, v in consent().items() if k != "sourceAttachment"}
        | {"sourceReference": {"reference": "Observation/x"}}
    )
    loinc = [t.CONSENT_PATIENT_CONSENT.concept_json()]  # the program consent's category
    assert "category:IDSCL" in paths(consent() | {"category": loinc})
    assert "status" in paths(consent() | {"status": "signed"})


def test_a_referral_consent_that_claims_no_profile_fails() -> None:
    unclaimed = consent()
    del unclaimed["meta"]
    assert "meta.profile" in paths(unclaimed)


def test_the_practitioner_requester_carecoord_wrote_before_fails() -> None:
    old = task(requester={"reference": "Practitioner/cm-1"})
    (violation,) = profiles.check(old)
    assert violation.path == "requester"
    assert violation.source.endswith("input/fsh/profiles/SDOHCCTaskForReferralManagement.fsh")


def test_the_contained_care_team_carecoord_wrote_before_fails() -> None:
    plan = to_json(care.care_plan(patient="Patient/p1", program="CCM", start=date(2026, 11, 2)))
    team = to_json(
        care.care_team(
            patient="Patient/p1",
            program="CCM",
            start=date(2026, 11, 2),
            care_manager="Practitioner/cm",
            provider="Practitioner/dr",
        )
    )
    team["id"] = "care-team"
    plan["contained"] = [team]
    plan["careTeam"] = [{"reference": "#care-team"}]
    assert paths(plan) == {"contained", "careTeam"}
    # ... and the encounter-focused category it carried is not the longitudinal one.
    assert t.CARE_TEAM_LONGITUDINAL.code == "LA28865-6"


@pytest.mark.parametrize("status", ["received", "ready"])
def test_statuses_outside_the_referral_value_set_fail(status: str) -> None:
    (violation,) = profiles.check(task(status=status))
    assert violation.path == "status"
    assert violation.source.endswith("SDOHCCValueSetReferralTaskStatus.fsh")


def test_task_fixed_values_cardinalities_and_targets() -> None:
    assert "intent" in paths(task(intent="plan"))
    bad_code = {"coding": [{"system": t.TASK_CODE_SYSTEM, "code": "approve"}]}
    assert "code" in paths(task(code=bad_code))
    no_focus = task()
    del no_focus["focus"]
    assert "focus" in paths(no_focus)
    assert "focus" in paths(task(focus={"reference": "CarePlan/x"}))
    assert "statusReason.text" in paths(task(status="rejected"))
    procedure_output = {
        "type": t.SDOHCC_RESULTING_ACTIVITY.concept_json(),
        "valueReference": {"reference": "Observation/o"},
    }
    assert "output" in paths(task(output=[procedure_output]))


def test_a_goal_in_supporting_info_and_no_profile_fail() -> None:
    sr = to_json(
        referral.referral_service_request(
            key="k", patient="Patient/p1", domain="food-insecurity", requester="Organization/o"
        )
    )
    assert "supportingInfo" in paths({**sr, "supportingInfo": [{"reference": "Goal/g"}]})
    unclaimed = {k: v for k, v in sr.items() if k != "meta"}
    assert "meta.profile" in paths(unclaimed)


def test_a_practitioner_role_nobody_can_reach_fails_us_core_pd_1() -> None:
    role = to_json(
        roles.care_manager_role(
            practitioner="Practitioner/cm",
            organization="Organization/o",
            telecom=[{"system": "phone", "value": "555"}],
        )
    )
    del role["telecom"]
    (violation,) = profiles.check(role)
    assert violation.source.endswith("StructureDefinition-us-core-practitionerrole.yml")


def test_us_core_care_plan_needs_its_narrative() -> None:
    plan = to_json(care.care_plan(patient="Patient/p1", program="CCM", start=date(2026, 11, 2)))
    del plan["text"]
    assert "text" in paths(plan)


def test_every_claimed_profile_has_rules_from_a_named_ig_file() -> None:
    for profile, (_, rules) in profiles.RULES.items():
        assert rules, profile
        for rule in rules:
            # the IG's files, or the base R4 resource a profile inherits a rule from
            assert rule.source.startswith(
                ("HL7/fhir-sdoh-clinicalcare@6604b7a ", "HL7/US-Core ", "HL7 FHIR R4 ")
            ), rule
