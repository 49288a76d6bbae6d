"""SDOH and referral builders follow the Gravity SDOH Clinical Care IG; directory builders."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from carecoord.caremodel import terminology as t
from carecoord.directory import builders as directory
from carecoord.fhir.models import to_json
from carecoord.handlers.referrals import builders as referral

NOW = datetime(2024, 5, 14, 15, 30, tzinfo=UTC)


def codes(concepts: list[dict]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for cc in concepts for c in cc.get("coding", [])}


def test_food_insecurity_condition_is_an_sdoh_health_concern() -> None:
    cond = to_json(
        referral.sdoh_condition(
            key="evt-1",
            patient="Patient/p1",
            domain="food-insecurity",
            identified_at=NOW,
            evidence=["Observation/hvs"],
        )
    )
    cats = codes(cond["category"])
    assert (t.US_CORE_CONDITION_CATEGORY_SYSTEM, "health-concern") in cats
    assert (t.SDOHCC_TEMPORARY_CODES, "food-insecurity") in cats
    assert (t.SNOMED, "733423003") in codes([cond["code"]])
    assert cond["clinicalStatus"]["coding"][0]["code"] == "active"
    assert cond["evidence"] == [{"detail": [{"reference": "Observation/hvs"}]}]
    assert cond["subject"] == {"reference": "Patient/p1"}


def test_food_security_goal_addresses_the_condition() -> None:
    goal = to_json(
        referral.sdoh_goal(
            key="evt-1", patient="Patient/p1", domain="food-insecurity", condition="Condition/c1"
        )
    )
    assert (t.SNOMED, "1078229009") in codes([goal["description"]])
    assert goal["addresses"] == [{"reference": "Condition/c1"}]
    assert (t.SDOHCC_TEMPORARY_CODES, "food-insecurity") in codes(goal["category"])
    assert goal["lifecycleStatus"] == "active"


def test_goal_without_a_gravity_snomed_goal_uses_text() -> None:
    goal = to_json(
        referral.sdoh_goal(
            key="e", patient="Patient/p1", domain="housing-instability", condition="Condition/c"
        )
    )
    assert goal["description"] == {"text": "Stably housed"}


def test_referral_service_request_and_fulfill_task() -> None:
    sr = to_json(
        referral.referral_service_request(
            key="evt-1",
            patient="Patient/p1",
            domain="food-insecurity",
            requester="Practitioner/cm1",
            performer="Organization/cbo1",
            reasons=["Condition/c1"],
            authored_on=NOW,
        )
    )
    assert (t.SNOMED, "410606002") in codes(sr["category"])
    assert (t.SDOHCC_TEMPORARY_CODES, "food-insecurity") in codes(sr["category"])
    assert sr["intent"] == "order"
    assert sr["reasonReference"] == [{"reference": "Condition/c1"}]
    assert sr["performer"] == [{"reference": "Organization/cbo1"}]

    task = to_json(
        referral.referral_task(
            key="evt-1",
            patient="Patient/p1",
            domain="food-insecurity",
            service_request="ServiceRequest/sr1",
            owner="Organization/cbo1",
            requester="PractitionerRole/cm1",
            authored_on=NOW,
        )
    )
    assert task["code"]["coding"][0]["system"] == t.TASK_CODE_SYSTEM
    assert task["code"]["coding"][0]["code"] == "fulfill"
    assert (task["intent"], task["status"]) == ("order", "requested")
    assert task["focus"] == {"reference": "ServiceRequest/sr1"}
    assert task["owner"] == {"reference": "Organization/cbo1"}
    assert task["requester"] == {"reference": "PractitionerRole/cm1"}
    assert task["authoredOn"] == "2024-05-14T15:30:00Z"
    assert task["for"] == {"reference": "Patient/p1"}


def test_referral_task_starts_with_a_requester_status() -> None:
    with pytest.raises(ValueError, match="draft or requested"):
        referral.referral_task(
            key="e",
            patient="Patient/p1",
            domain="food-insecurity",
            service_request="ServiceRequest/sr1",
            owner="Organization/cbo1",
            requester="PractitionerRole/cm1",
            authored_on=NOW,
            status="accepted",
        )


def test_unknown_domain_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="food-insecurity"):
        referral.sdoh_condition(key="e", patient="Patient/p1", domain="weather")


def test_every_domain_builds_condition_goal_and_referral() -> None:
    for domain in t.SDOH_DOMAINS:
        cond = referral.sdoh_condition(key="e", patient="Patient/p", domain=domain)
        assert to_json(cond)["code"]["coding"]
        referral.sdoh_goal(key="e", patient="Patient/p", domain=domain, condition="Condition/c")
        referral.referral_service_request(
            key="e", patient="Patient/p", domain=domain, requester="Practitioner/c"
        )


def test_directory_builders_link_service_organization_location() -> None:
    org = to_json(
        directory.organization(
            source="hsds-211", source_id="org-42", name="Eastside Food Bank", phone="555-0100"
        )
    )
    assert org["identifier"][0]["value"] == "hsds-211:org-42"
    loc = to_json(
        directory.location(
            source="hsds-211",
            source_id="loc-1",
            name="Eastside pantry",
            organization="Organization/o1",
            postal_code="02139",
        )
    )
    assert loc["address"]["postalCode"] == "02139"
    assert loc["managingOrganization"] == {"reference": "Organization/o1"}
    svc = to_json(
        directory.healthcare_service(
            source="hsds-211",
            source_id="svc-7",
            name="Weekly groceries",
            organization="Organization/o1",
            domains=["food-insecurity"],
            locations=["Location/l1"],
            service_area_postal_codes=["02139", "02141"],
            languages=["en", "es"],
        )
    )
    assert svc["providedBy"] == {"reference": "Organization/o1"}
    # One directory shape (carecoord.directory.shape), as the HSDS importer writes it and
    # the ranking reads it: the domain in category, the postal codes in contained coverageArea.
    assert (t.SDOHCC_TEMPORARY_CODES, "food-insecurity") in codes(svc["category"])
    assert (t.US_CORE_CATEGORY_SYSTEM, "sdoh") in codes(svc["category"])
    assert "characteristic" not in svc
    areas = {c["id"]: c for c in svc["contained"]}
    postal = {areas[a["reference"][1:]]["address"]["postalCode"] for a in svc["coverageArea"]}
    assert postal == {"02139", "02141"}


def test_directory_r5_moves_telecom_into_contact() -> None:
    org = to_json(
        directory.organization(
            source="s", source_id="o", name="CBO", phone="555", postal_code="1", version="R5"
        )
    )
    assert "telecom" not in org
    assert org["contact"][0]["telecom"][0]["value"] == "555"


def test_goal_due_date_becomes_target() -> None:
    goal = to_json(
        referral.sdoh_goal(
            key="e",
            patient="Patient/p",
            domain="food-insecurity",
            condition="Condition/c",
            due=date(2024, 12, 1),
        )
    )
    assert goal["target"] == [{"dueDate": "2024-12-01"}]
