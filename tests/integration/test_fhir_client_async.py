"""AsyncFhirClient against the real FHIR server: the same operations, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.task import Task

from carecoord.core.effects import Effects
from carecoord.fhir.async_client import AsyncFhirClient
from carecoord.fhir.bundles import reference_of, version_of
from carecoord.fhir.client import FhirClient
from carecoord.fhir.errors import FhirNotFound, FhirPreconditionFailed

pytestmark = pytest.mark.integration

SYSTEM = "urn:carecoord:test-async"
T = TypeVar("T")


def run(base_url: str, scenario: Callable[[AsyncFhirClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with AsyncFhirClient(base_url, retry_budget=5.0) as fhir:
            return await scenario(fhir)

    return asyncio.run(main())


def a_patient(value: str, system: str = SYSTEM) -> Patient:
    return Patient(identifier=[{"system": system, "value": value}])


def test_async_crud_and_errors(fhir_base_url: str, unique: str) -> None:
    async def scenario(fhir: AsyncFhirClient) -> None:
        created = await fhir.create(a_patient(unique))
        assert created.id
        first = version_of(created)
        created.active = True  # type: ignore[attr-defined]
        updated = await fhir.update(created, if_match=first)
        assert version_of(updated) != first
        assert (await fhir.vread("Patient", created.id, first or "")).active is None  # type: ignore[attr-defined]
        assert (await fhir.read("Patient", created.id)).active is True  # type: ignore[attr-defined]
        with pytest.raises(FhirPreconditionFailed):
            await fhir.update(created, if_match=first)
        await fhir.delete("Patient", created.id)
        with pytest.raises(FhirNotFound):
            await fhir.read("Patient", f"nothing-{unique}")
        assert (await fhir.capabilities()).get_resource_type() == "CapabilityStatement"

    run(fhir_base_url, scenario)


def test_async_search_paging_include_and_conditional_create(
    fhir_base_url: str, unique: str
) -> None:
    system = f"{SYSTEM}:{unique}"

    async def scenario(fhir: AsyncFhirClient) -> None:
        patients = await asyncio.gather(*(fhir.create(a_patient(str(i), system)) for i in range(3)))
        again = await fhir.create(a_patient("0", system), if_none_exist=f"identifier={system}|0")
        assert again.id == patients[0].id
        found = await fhir.search("Patient", {"identifier": f"{system}|", "_count": "2"})
        assert sorted(p.id for p in found) == sorted(p.id for p in patients)
        pages = [
            page
            async for page in fhir.search_pages(
                "Patient", {"identifier": f"{system}|", "_count": "2"}
            )
        ]
        assert len(pages) == 2

        task = Task(
            status="requested",
            intent="order",
            for_fhir={"reference": reference_of(patients[1])},
            identifier=[{"system": system, "value": "task"}],
        )
        await fhir.create(task)
        with_patient = await fhir.search(
            "Task", [("identifier", f"{system}|task"), ("_include", "Task:patient")]
        )
        assert sorted(reference_of(r) for r in with_patient)[0] == reference_of(patients[1])

    run(fhir_base_url, scenario)


def test_async_update_with_retry_transaction_batch_and_apply(
    fhir_base_url: str, unique: str
) -> None:
    async def scenario(fhir: AsyncFhirClient) -> None:
        effects = Effects()
        patient_urn = effects.create(a_patient(unique), SYSTEM, unique)
        task = Task(status="requested", intent="order", for_fhir={"reference": patient_urn},
                    identifier=[{"system": SYSTEM, "value": unique + "-t"}])  # fmt: skip
        effects.create(task, SYSTEM, unique + "-t")
        result = await fhir.apply(effects.writes)
        replay = await fhir.apply(effects.writes)
        assert replay.references == result.references
        assert [e.created for e in result] == [True, True]
        assert [e.created for e in replay] == [False, False]
        task_id = (result[1].reference or "").split("/")[1]

        calls = 0

        def mutate(current: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:  # another worker writes between our read and our write
                with FhirClient(fhir_base_url) as other:
                    theirs = other.read("Task", task_id)
                    theirs.priority = "urgent"  # type: ignore[attr-defined]
                    other.update(theirs, if_match=version_of(theirs))
            current.status = "ready"

        done = await fhir.update_with_retry("Task", task_id, mutate)
        assert calls == 2
        assert done.status == "ready" and done.priority == "urgent"  # type: ignore[attr-defined]

        batch = await fhir.batch({
            "resourceType": "Bundle", "type": "batch",
            "entry": [{"request": {"method": "GET", "url": f"Task/{task_id}"}},
                      {"request": {"method": "GET", "url": f"Task/none-{unique}"}}],
        })  # fmt: skip
        assert batch[0].ok and isinstance(batch[1].error, FhirNotFound)

    run(fhir_base_url, scenario)
