"""FhirClient against the real FHIR server (sekmet by default, or CARECOORD_FHIR_BASE_URL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.task import Task

from carecoord.core.effects import Effects
from carecoord.fhir.bundles import reference_of, version_of
from carecoord.fhir.client import FhirClient
from carecoord.fhir.errors import (
    FhirGone,
    FhirInvalid,
    FhirNotFound,
    FhirPreconditionFailed,
)

pytestmark = pytest.mark.integration

SYSTEM = "urn:carecoord:test"


@pytest.fixture
def fhir(fhir_base_url: str) -> Iterator[FhirClient]:
    with FhirClient(fhir_base_url, retry_budget=5.0) as client:
        yield client


def a_patient(value: str) -> Patient:
    return Patient(identifier=[{"system": SYSTEM, "value": value}])


def a_task(value: str, patient_ref: str, status: str = "requested") -> Task:
    return Task(
        identifier=[{"system": SYSTEM, "value": value}],
        status=status,
        intent="order",
        for_fhir={"reference": patient_ref},
    )


def test_create_read_vread_update_delete(fhir: FhirClient, unique: str) -> None:
    created = fhir.create(a_patient(unique))
    assert created.id and version_of(created)
    first_version = version_of(created)
    assert fhir.read("Patient", created.id).identifier[0].value == unique  # type: ignore[attr-defined]

    created.active = True  # type: ignore[attr-defined]
    updated = fhir.update(created, if_match=first_version)
    assert updated.active is True  # type: ignore[attr-defined]
    assert version_of(updated) != first_version

    old = fhir.vread("Patient", created.id, first_version or "")
    assert old.active is None  # type: ignore[attr-defined]
    assert version_of(old) == first_version

    fhir.delete("Patient", created.id)
    with pytest.raises((FhirGone, FhirNotFound)):
        fhir.read("Patient", created.id)
    fhir.delete("Patient", created.id)  # already gone: still fine


def test_missing_resource_raises_not_found_naming_the_request(fhir: FhirClient) -> None:
    with pytest.raises(FhirNotFound) as err:
        fhir.read("Patient", "does-not-exist-anywhere")
    assert err.value.request is not None
    assert err.value.request.endswith("/Patient/does-not-exist-anywhere")
    assert err.value.request.startswith("GET ")


def test_rejected_write_raises_invalid_with_issues(fhir: FhirClient, unique: str) -> None:
    body = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "PUT", "url": f"Patient/{unique}"}}],
    }
    with pytest.raises(FhirInvalid) as err:
        fhir.transaction(body)
    assert err.value.status in (400, 422)
    assert err.value.issues


def test_search_follows_every_page(fhir: FhirClient, unique: str) -> None:
    system = f"{SYSTEM}:{unique}"
    for i in range(5):
        fhir.create(Patient(identifier=[{"system": system, "value": str(i)}]))
    params = {"identifier": f"{system}|", "_count": "2"}
    found = fhir.search("Patient", params)
    assert sorted(p.identifier[0].value for p in found) == ["0", "1", "2", "3", "4"]  # type: ignore[attr-defined]

    pages = list(fhir.search_pages("Patient", params))
    assert len(pages) == 3
    assert sum(len(p.entry or []) for p in pages) == 5  # type: ignore[attr-defined]


def test_search_returns_included_resources(fhir: FhirClient, unique: str) -> None:
    patient = fhir.create(a_patient(unique))
    fhir.create(a_task(unique, reference_of(patient)))
    found = fhir.search(
        "Task", [("identifier", f"{SYSTEM}|{unique}"), ("_include", "Task:patient")]
    )
    refs = sorted(reference_of(r) for r in found)
    assert [r.split("/")[0] for r in refs] == ["Patient", "Task"]
    assert reference_of(patient) in refs


def test_conditional_create_twice_makes_one_resource(fhir: FhirClient, unique: str) -> None:
    condition = f"identifier={SYSTEM}|{unique}"
    first = fhir.create(a_patient(unique), if_none_exist=condition)
    second = fhir.create(a_patient(unique), if_none_exist=condition)
    assert first.id == second.id
    assert len(fhir.search("Patient", {"identifier": f"{SYSTEM}|{unique}"})) == 1


def test_update_with_a_stale_version_is_refused(fhir: FhirClient, unique: str) -> None:
    created = fhir.create(a_patient(unique))
    stale = version_of(created)
    created.active = True  # type: ignore[attr-defined]
    fhir.update(created, if_match=stale)
    created.active = False  # type: ignore[attr-defined]
    with pytest.raises(FhirPreconditionFailed) as err:
        fhir.update(created, if_match=stale)
    assert err.value.status == 412


def test_update_with_retry_survives_a_concurrent_change(
    fhir: FhirClient, fhir_base_url: str, unique: str
) -> None:
    patient = fhir.create(a_patient(unique))
    task = fhir.create(a_task(unique, reference_of(patient)))
    assert task.id
    seen_versions: list[str | None] = []

    def start(current: Any) -> None:
        seen_versions.append(version_of(current))
        if len(seen_versions) == 1:
            # Another worker changes the task between our read and our write.
            with FhirClient(fhir_base_url) as other:
                theirs = other.read("Task", current.id)
                theirs.priority = "urgent"  # type: ignore[attr-defined]
                other.update(theirs, if_match=version_of(theirs))
        current.status = "in-progress"

    result = fhir.update_with_retry("Task", task.id, start)
    assert len(seen_versions) == 2 and seen_versions[0] != seen_versions[1]
    stored = fhir.read("Task", task.id)
    assert stored.status == "in-progress"  # type: ignore[attr-defined]
    assert stored.priority == "urgent"  # type: ignore[attr-defined]  # their change kept
    assert version_of(stored) == version_of(result)


def test_transaction_resolves_urn_uuid_references(fhir: FhirClient, unique: str) -> None:
    patient_urn = "urn:uuid:0b0e5e7c-1111-4c2e-9d2b-" + unique.ljust(12, "0")[:12]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_urn,
                "resource": a_patient(unique).model_dump(mode="json", exclude_none=True),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "for": {"reference": patient_urn},
                },
                "request": {"method": "POST", "url": "Task"},
            },
        ],
    }
    result = fhir.transaction(bundle)
    patient_ref = result.reference(patient_urn)
    assert patient_ref.startswith("Patient/")
    assert [e.status for e in result] == [201, 201]
    task_ref = result[1].reference
    assert task_ref and task_ref.startswith("Task/") and result[1].version_id
    task = fhir.read("Task", task_ref.split("/")[1])
    assert task.for_fhir.reference == patient_ref  # type: ignore[attr-defined]


def test_batch_entries_succeed_or_fail_independently(fhir: FhirClient, unique: str) -> None:
    patient = fhir.create(a_patient(unique))
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": reference_of(patient)}},
            {"request": {"method": "GET", "url": f"Patient/missing-{unique}"}},
            {
                "resource": a_patient(unique + "b").model_dump(mode="json", exclude_none=True),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={SYSTEM}|{unique}b",
                },
            },
        ],
    }
    result = fhir.batch(bundle)
    ok, missing, created = result.entries
    assert ok.ok and ok.reference == reference_of(patient)
    assert isinstance(missing.error, FhirNotFound)
    assert created.created and created.reference and created.reference.startswith("Patient/")
    assert result.errors == [missing]


def test_apply_effects_once_and_replay_creates_no_duplicates(fhir: FhirClient, unique: str) -> None:
    existing = fhir.create(a_task(unique + "-old", "Patient/nobody"))
    assert existing.id

    def effects_for(current: Any) -> Effects:
        effects = Effects()
        patient_ref = effects.create(a_patient(unique), SYSTEM, unique)
        effects.create(a_task(unique + "-task", patient_ref), SYSTEM, unique + "-task")
        changed = current.model_copy(deep=True)
        changed.status = "cancelled"
        effects.update(changed, version_of(current))
        return effects

    effects = effects_for(existing)
    first = fhir.apply(effects.writes)
    assert [e.status for e in first] == [201, 201, 200]
    patient_urn = effects.writes[0].full_url  # type: ignore[union-attr]
    patient_ref = first.reference(patient_urn)
    task = fhir.read("Task", (first[1].reference or "").split("/")[1])
    assert task.for_fhir.reference == patient_ref  # type: ignore[attr-defined]
    assert fhir.read("Task", existing.id).status == "cancelled"  # type: ignore[attr-defined]

    # Redelivery: the stale If-Match fails the whole transaction ...
    with pytest.raises(FhirPreconditionFailed):
        fhir.apply(effects.writes)
    # ... the runtime re-reads and re-runs; the conditional creates find what exists.
    again = fhir.apply(effects_for(fhir.read("Task", existing.id)).writes)
    assert again.reference(patient_urn) == patient_ref
    assert again[1].reference == first[1].reference
    assert [e.created for e in again][:2] == [False, False]
    assert len(fhir.search("Patient", {"identifier": f"{SYSTEM}|{unique}"})) == 1
    assert len(fhir.search("Task", {"identifier": f"{SYSTEM}|{unique}-task"})) == 1
    assert len(fhir.apply([])) == 0


def test_capabilities(fhir: FhirClient) -> None:
    statement = fhir.capabilities()
    assert statement.get_resource_type() == "CapabilityStatement"
    assert statement.fhirVersion.startswith("4.0")  # type: ignore[attr-defined]
