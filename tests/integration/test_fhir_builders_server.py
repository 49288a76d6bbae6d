"""Built resources are accepted by a real FHIR R4 server (sekmet) in a transaction of conditional
creates that reference each other by urn:uuid, and replaying the transaction duplicates nothing.

sekmet cannot search CareTeam or Goal by identifier (If-None-Exist is refused with 400), so those
two are written with PUT to their deterministic id (identifiers.stable_id) — the fallback the
runtime needs for such servers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.resource import Resource

from carecoord.caremodel import builders as care
from carecoord.caremodel.identifiers import business_identifier_json, create_for, stable_id
from carecoord.core.effects import Create
from carecoord.directory import builders as directory
from carecoord.fhir.models import to_json
from carecoord.handlers.care import roles
from carecoord.handlers.referrals import builders as referral

pytestmark = pytest.mark.integration

NOW = datetime(2024, 5, 14, 15, 30, tzinfo=UTC)
NO_IDENTIFIER_SEARCH = {"CareTeam", "Goal"}  # on sekmet


def entry(c: Create) -> dict[str, Any]:
    rtype = c.resource.get_resource_type()
    resource = to_json(c.resource)
    if rtype in NO_IDENTIFIER_SEARCH:
        resource["id"] = stable_id(c)
        request = {"method": "PUT", "url": f"{rtype}/{resource['id']}"}
    else:
        request = {"method": "POST", "url": rtype, "ifNoneExist": c.if_none_exist}
    return {"fullUrl": c.full_url, "resource": resource, "request": request}


def transaction(creates: Sequence[Create]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [entry(c) for c in creates]}


def post(base: str, bundle: dict[str, Any]) -> list[str]:
    """POST the transaction; return "Type/id" of each entry, in order."""
    r = httpx.post(
        base,
        json=bundle,
        headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text[:2000]
    body = r.json()
    assert body["type"] == "transaction-response"
    out = []
    for entry in body["entry"]:
        status = entry["response"]["status"]
        assert status.startswith(("200", "201")), entry
        location = entry["response"]["location"]
        parts = location.split("/_history/")[0].rstrip("/").split("/")
        out.append(f"{parts[-2]}/{parts[-1]}")
    return out


def read(base: str, reference: str) -> dict[str, Any]:
    r = httpx.get(f"{base}/{reference}", headers={"Accept": "application/fhir+json"}, timeout=30)
    assert r.status_code == 200, r.text[:500]
    data: dict[str, Any] = r.json()
    return data


def count_by_identifier(base: str, c: Create) -> int:
    rtype = c.resource.get_resource_type()
    if rtype in NO_IDENTIFIER_SEARCH:  # sekmet ignores `identifier` there: count by the id
        params = {"_id": stable_id(c)}
    else:
        params = {"identifier": f"{c.identifier_system}|{c.identifier_value}"}
    r = httpx.get(
        f"{base}/{rtype}",
        params=params,
        headers={"Accept": "application/fhir+json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text[:500]
    return sum(1 for e in r.json().get("entry", []) if e.get("search", {}).get("mode") != "outcome")


def people(base: str, unique: str) -> tuple[str, str, str]:
    """Patient, care manager and provider with test-unique identifiers, as "Type/id"."""
    from fhir.resources.R4B.patient import Patient
    from fhir.resources.R4B.practitioner import Practitioner

    def make(cls: type[Resource], who: str) -> Create:
        ident = business_identifier_json("test-person", unique, who)
        return create_for(cls.model_validate({"identifier": [ident], "active": True}))

    patient, cm, dr = post(
        base,
        transaction([make(Patient, "patient"), make(Practitioner, "cm"), make(Practitioner, "dr")]),
    )
    return patient, cm, dr


def assert_replay_is_harmless(base: str, creates: list[Create]) -> list[str]:
    first = post(base, transaction(creates))
    second = post(base, transaction(creates))
    assert second == first, "a replay must resolve to the same resources"
    for c in creates:
        assert count_by_identifier(base, c) == 1, c.identifier_value
    return first


def test_enrolment_outreach_and_tasks_accepted_once(fhir_base_url: str, unique: str) -> None:
    patient, cm, dr = people(fhir_base_url, unique)
    team = create_for(
        care.care_team(
            patient=patient, program="CCM", start=date(2024, 5, 1), care_manager=cm, provider=dr
        )
    )
    goal = create_for(care.care_goal(patient=patient, key=unique, description="Walk daily"))
    request = create_for(
        care.outreach_request(
            patient=patient, program="CCM", month=date(2024, 5, 1), care_manager=cm
        )
    )
    work = create_for(
        care.work_task(
            key=unique, patient=patient, work="assessment", owner=cm, due=date(2024, 5, 31)
        )
    )
    plan = create_for(
        care.care_plan(
            patient=patient,
            program="CCM",
            start=date(2024, 5, 1),
            care_team=team.full_url,
            goals=[goal.full_url],
            activities=[request.full_url, work.full_url],
            author=cm,
        )
    )
    attempt = create_for(
        care.outreach_attempt(
            key=unique,
            patient=patient,
            outreach=request.full_url,
            channel="phone",
            outcome="no-answer",
            attempted_at=NOW,
            by=cm,
        )
    )
    escalation = create_for(
        care.escalation_task(
            patient=patient, outreach=request.full_url, owner=dr, care_plan=plan.full_url
        )
    )
    clinical = create_for(
        care.clinical_review_task(
            key=unique, patient=patient, provider=dr, question="Dose change?", urgent=True
        )
    )
    charge = create_for(
        care.charge_item(patient=patient, program="CCM", month=date(2024, 5, 1), cpt="99490")
    )
    creates = [team, goal, request, work, plan, attempt, escalation, clinical, charge]
    refs = assert_replay_is_harmless(fhir_base_url, creates)
    by_type = dict(zip([c.resource.get_resource_type() for c in creates], refs, strict=False))

    stored_plan = read(fhir_base_url, refs[creates.index(_find(creates, "care-plan"))])
    assert stored_plan["intent"] == "plan"
    assert {a["reference"]["reference"] for a in stored_plan["activity"]} >= {
        by_type["CommunicationRequest"]
    }
    stored_escalation = read(
        fhir_base_url, refs[creates.index(_find(creates, "outreach-escalation"))]
    )
    assert stored_escalation["focus"]["reference"] == by_type["CommunicationRequest"]
    assert stored_escalation["priority"] == "urgent"


def test_referral_chain_and_directory_accepted_once(fhir_base_url: str, unique: str) -> None:
    patient, cm, _ = people(fhir_base_url, unique)
    org = create_for(directory.organization(source=f"t-{unique}", source_id="o", name="Food bank"))
    loc = create_for(
        directory.location(
            source=f"t-{unique}", source_id="l", name="Pantry", organization=org.full_url,
            postal_code="02139",
        )
    )  # fmt: skip
    svc = create_for(
        directory.healthcare_service(
            source=f"t-{unique}",
            source_id="s",
            name="Groceries",
            organization=org.full_url,
            domains=["food-insecurity"],
            locations=[loc.full_url],
            service_area_postal_codes=["02139"],
        )
    )
    cond = create_for(
        referral.sdoh_condition(
            key=unique, patient=patient, domain="food-insecurity", identified_at=NOW
        )
    )
    goal = create_for(
        referral.sdoh_goal(
            key=unique, patient=patient, domain="food-insecurity", condition=cond.full_url
        )
    )
    # SDOHCC Task requester: the care manager's PractitionerRole at the practice.
    role = create_for(
        roles.care_manager_role(
            practitioner=cm,
            organization=org.full_url,
            telecom=[{"system": "phone", "value": "555-0100"}],
        )
    )
    sr = create_for(
        referral.referral_service_request(
            key=unique,
            patient=patient,
            domain="food-insecurity",
            requester=role.full_url,
            performer=org.full_url,
            reasons=[cond.full_url],
            goals=[goal.full_url],
            authored_on=NOW,
        )
    )
    task = create_for(
        referral.referral_task(
            key=unique,
            patient=patient,
            domain="food-insecurity",
            service_request=sr.full_url,
            owner=org.full_url,
            requester=role.full_url,
            authored_on=NOW,
        )
    )
    creates = [org, loc, svc, role, cond, goal, sr, task]
    refs = assert_replay_is_harmless(fhir_base_url, creates)
    org_ref, _, _, role_ref, cond_ref, _, sr_ref, task_ref = refs
    stored = read(fhir_base_url, task_ref)
    assert stored["focus"]["reference"] == sr_ref
    assert stored["owner"]["reference"] == org_ref
    assert stored["code"]["coding"][0]["code"] == "fulfill"
    assert stored["requester"]["reference"] == role_ref
    assert read(fhir_base_url, sr_ref)["reasonReference"][0]["reference"] == cond_ref


def _find(creates: list[Create], kind: str) -> Create:
    return next(c for c in creates if c.identifier_system.endswith("/" + kind))
