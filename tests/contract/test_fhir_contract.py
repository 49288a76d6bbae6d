"""What handlers and the runtime rely on from FHIR, checked against InMemoryFhir and a real server
alike: the same cases, so the test kit cannot drift from the server it stands in for."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from carecoord.caremodel.builders import care_plan, outreach_request
from carecoord.caremodel.identifiers import add_create, identifier_system
from carecoord.core.effects import Effects, Update
from carecoord.fhir.errors import FhirNotFound, FhirPreconditionFailed


def _enrol(patient: str) -> Effects:
    effects = Effects()
    plan = add_create(effects, care_plan(patient=patient, program="CCM", start=date(2030, 1, 2)))
    add_create(
        effects,
        outreach_request(
            patient=patient,
            program="CCM",
            month=date(2030, 1, 1),
            care_manager="Practitioner/cm-contract",
            care_plan=plan,
        ),
    )
    return effects


def test_transaction_creates_and_resolves_urn_references(fhir: Any, unique: str) -> None:
    patient = f"Patient/contract-{unique}"
    result = fhir.apply(_enrol(patient).writes)
    plan_ref, request_ref = (e.reference for e in result.entries)
    assert plan_ref.startswith("CarePlan/") and request_ref.startswith("CommunicationRequest/")
    assert [e.status for e in result.entries] == [201, 201]
    request = fhir.read(*request_ref.split("/"))
    assert request.basedOn[0].reference == plan_ref


def test_conditional_create_creates_once(fhir: Any, unique: str) -> None:
    patient = f"Patient/contract-{unique}"
    first = fhir.apply(_enrol(patient).writes)
    again = fhir.apply(_enrol(patient).writes)
    assert [e.reference for e in again.entries] == [e.reference for e in first.entries]
    assert [e.status for e in again.entries] == [200, 200]
    assert len(fhir.search("CarePlan", {"subject": patient})) == 1


def test_search_by_identifier_and_subject(fhir: Any, unique: str) -> None:
    patient = f"Patient/contract-{unique}"
    fhir.apply(_enrol(patient).writes)
    (plan,) = fhir.search("CarePlan", {"subject": patient})
    ident = next(i for i in plan.identifier if i.system == identifier_system("care-plan"))
    found = fhir.search("CarePlan", {"identifier": f"{ident.system}|{ident.value}"})
    assert [p.id for p in found] == [plan.id]
    assert fhir.search("CarePlan", {"subject": f"Patient/other-{unique}"}) == []


def test_read_of_a_missing_resource_is_not_found(fhir: Any, unique: str) -> None:
    with pytest.raises(FhirNotFound):
        fhir.read("Task", f"missing-{unique}")


def test_update_with_if_match_bumps_the_version(fhir: Any, unique: str) -> None:
    patient = f"Patient/contract-{unique}"
    ref = fhir.apply(_enrol(patient).writes).entries[0].reference
    plan = fhir.read(*ref.split("/"))
    version = plan.meta.versionId
    plan.status = "on-hold"
    fhir.apply([Update(plan, version)])
    after = fhir.read(*ref.split("/"))
    assert after.status == "on-hold" and after.meta.versionId != version


def test_stale_if_match_fails_and_the_transaction_keeps_nothing(fhir: Any, unique: str) -> None:
    patient = f"Patient/contract-{unique}"
    ref = fhir.apply(_enrol(patient).writes).entries[0].reference
    plan = fhir.read(*ref.split("/"))
    stale = plan.meta.versionId
    plan.status = "on-hold"
    fhir.apply([Update(plan, stale)])
    other = f"Patient/contract-b-{unique}"
    writes = [*_enrol(other).writes, Update(plan, stale)]
    with pytest.raises(FhirPreconditionFailed):
        fhir.apply(writes)
    assert fhir.search("CarePlan", {"subject": other}) == []
