"""Reading a resource's elements as JSON where it is a lean one (carecoord.fhir.reading): the
readers every event asks answer the same from the JSON as from the validated resource, a
resource whose JSON is not FHIR fails typed, and an element handed out (perhaps edited) is read
from the object, not from the stale JSON."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import carecoord_identifier, identifier_system
from carecoord.fhir.errors import FhirResponseInvalid
from carecoord.fhir.lazy import NOT_JSON, element_json, lean
from carecoord.fhir.models import parse_resource
from carecoord.fhir.reading import as_json, element, field, items
from carecoord.handlers.care.enrolment_state import consent_span
from carecoord.handlers.care.model import identifier_value, patient_of, version_of
from carecoord.handlers.care.patient_context import _members, _started, _team_ids, program_of

PLAN_ID = identifier_system("care-plan")

TEAM: dict[str, Any] = {
    "resourceType": "CareTeam",
    "id": "team1",
    "status": "active",
    "subject": {"reference": "Patient/p1"},
    "participant": [
        {
            "member": {"reference": "Practitioner/cm1"},
            "role": [{"coding": [t.ROLE_CARE_COORDINATOR.json()]}],
        },
        {
            "member": {"reference": "Practitioner/pcp1"},
            "role": [{"coding": [t.ROLE_PRIMARY_CARE_PHYSICIAN.json()]}],
        },
    ],
}

PLAN: dict[str, Any] = {
    "resourceType": "CarePlan",
    "id": "plan1",
    "meta": {"versionId": "3"},
    "identifier": [{"system": PLAN_ID, "value": "p1:CCM:2026-11-01"}],
    "status": "active",
    "intent": "plan",
    "subject": {"reference": "Patient/p1"},
    "period": {"start": "2026-11-01"},
    "category": [{"coding": [{"system": t.CARE_PROGRAM_SYSTEM, "code": "CCM"}]}],
    "careTeam": [{"reference": "CareTeam/team1"}, {"reference": "#contained"}],
}

CONSENT: dict[str, Any] = {
    "resourceType": "Consent",
    "id": "c1",
    "status": "inactive",
    "scope": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}
        ]
    },
    "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
    "patient": {"reference": "Patient/p1"},
    "dateTime": "2026-10-02T09:30:00Z",
    "policyRule": {"text": "CCM consent"},
    "provision": {"period": {"start": "2026-10-02", "end": "2026-11-15"}},
}

READERS: list[tuple[str, dict[str, Any], Callable[[Any], Any]]] = [
    ("members", TEAM, lambda r: _members([r])),
    ("team ids", PLAN, _team_ids),
    ("started", PLAN, lambda r: _started(r)[1:]),  # a date's text differs: see test below
    ("program", PLAN, program_of),
    ("patient", PLAN, patient_of),
    ("version", PLAN, version_of),
    ("identifier", PLAN, lambda r: identifier_value(r, PLAN_ID)),
    ("business identifier", PLAN, carecoord_identifier),
    ("consent span", CONSENT, consent_span),
]


@pytest.mark.parametrize(("what", "data", "read"), READERS, ids=[r[0] for r in READERS])
def test_a_reader_answers_the_same_lean_and_validated(
    what: str, data: dict[str, Any], read: Callable[[Any], Any]
) -> None:
    validated = read(parse_resource(dict(data)))
    with lean():
        resource = parse_resource(dict(data))
        assert read(resource) == validated
        assert resource.json() is not None  # answered from the JSON: nothing validated


def test_the_readers_find_what_the_resources_say() -> None:
    with lean():
        team, plan, consent = (parse_resource(dict(d)) for d in (TEAM, PLAN, CONSENT))
        assert _members([team]) == ("Practitioner/cm1", "Practitioner/pcp1")
        assert _team_ids(plan) == ["team1"]
        assert (program_of(plan), patient_of(plan), version_of(plan)) == ("CCM", "p1", "3")
        assert consent_span(consent) == (date(2026, 10, 2), date(2026, 11, 15))
        assert _started(plan) == ("2026-11-01", "plan1")


def test_an_element_handed_out_is_read_from_the_object() -> None:
    with lean():
        team = parse_resource(dict(TEAM))
        team.participant[0].member.reference = "Practitioner/cm2"  # validated, handed out, edited
        assert element_json(team, "participant") is NOT_JSON
        assert _members([team]).care_manager == "Practitioner/cm2"
        assert element_json(team, "subject") == {"reference": "Patient/p1"}  # the rest: JSON


@pytest.mark.parametrize(
    "participant",
    [
        {"member": {"reference": "Practitioner/cm1"}},  # an object where a list belongs
        [{"member": "Practitioner/cm1"}],  # a string where a Reference belongs
        [{"member": {"reference": "Practitioner/cm1"}, "rank": 1}],  # no such element
        [{"role": [{"coding": [["nested"]]}]}],  # deeper down
    ],
)
def test_json_that_is_not_fhir_fails_typed_naming_the_resource(participant: Any) -> None:
    with lean():
        team = parse_resource({**TEAM, "participant": participant})
        assert element_json(team, "participant") is NOT_JSON
        with pytest.raises(FhirResponseInvalid, match="CareTeam"):
            _members([team])


def test_an_element_the_type_lacks_is_absent_without_validating() -> None:
    with lean():
        plan = parse_resource(dict(PLAN))
        assert element(plan, "for_fhir") is None  # CarePlan has no `for`
        assert plan.json() is not None


def test_field_and_items_read_json_and_models_alike() -> None:
    model = parse_resource(dict(PLAN))
    assert field(element(model, "period"), "start") == date(2026, 11, 1)
    assert field({"start": "2026-11-01"}, "start") == "2026-11-01"
    assert field(None, "start") is None
    assert items(None) == [] and items({"not": "a list"}) == []
    assert as_json(element(model, "category")) == PLAN["category"]
    with lean():
        lean_plan = parse_resource(dict(PLAN))
        copied = as_json(element(lean_plan, "category"))
        assert copied == PLAN["category"] and copied is not PLAN["category"]
