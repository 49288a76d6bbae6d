"""time.logged reads the same whether the server batches its searches or not: one batch where it
declares `batch`, separate searches (only those needed) where it does not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from carecoord.core.envelope import new_event
from carecoord.handlers.billing import handler as billing
from carecoord.handlers.programs import enrolment
from support.care_management import FakeFhir, Runner, enrolled


class BatchingFhir(FakeFhir):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.searches: list[str] = []

    def capability_statement(self) -> dict[str, Any]:
        return {
            "resourceType": "CapabilityStatement",
            "rest": [{"interaction": [{"code": "batch"}]}],
        }

    def search(self, resource_type: str, params: Any) -> list[Any]:
        self.searches.append(resource_type)
        return super().search(resource_type, params)

    def search_batch(self, searches: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> list[Any]:
        self.batches.append([rtype for rtype, _ in searches])
        return [FakeFhir.search(self, rtype, list(params)) for rtype, params in searches]


class CountingFhir(FakeFhir):
    def __init__(self) -> None:
        super().__init__()
        self.searches: list[str] = []

    def search(self, resource_type: str, params: Any) -> list[Any]:
        self.searches.append(resource_type)
        return super().search(resource_type, params)


def _month(run: Runner) -> list[tuple[str, Any, Any]]:
    run.run(enrolled("p1", start="2026-03-02", conditions=["Condition/c1", "Condition/c2"]))
    for n, minutes in enumerate((12, 10, 25), start=1):
        run.run(
            new_event(
                "carecoord.time.logged",
                "p1",
                {"program": "CCM", "minutes": minutes, "activity": "care coordination",
                 "by": "Practitioner/cm1", "performed_at": f"2026-03-1{n}T10:00:00+00:00"},
                id=f"t-{n}",
            )
        )  # fmt: skip
    return sorted(
        (i["code"]["coding"][0]["code"], i["status"], i.get("quantity", {}).get("value"))
        for i in run.fhir.all("ChargeItem")
    )


def test_the_same_charge_items_with_and_without_batch() -> None:
    plain = Runner([*enrolment.HANDLERS, *billing.HANDLERS])
    plain.fhir = CountingFhir()
    batched = Runner([*enrolment.HANDLERS, *billing.HANDLERS])
    batched.fhir = BatchingFhir()
    items = _month(batched)
    assert _month(plain) == items
    assert ("99439", "billable", 1) in items and ("99490", "billable", 1) in items
    fhir = batched.fhir
    assert isinstance(fhir, BatchingFhir)
    entries = [b for b in fhir.batches if "ChargeItem" in b]  # (enrolment batches its own reads)
    assert len(entries) == 3  # one per time entry
    assert set(entries[0]) == {
        "ChargeItem",
        "CarePlan",
        "Consent",
        "Communication",
        "Condition",
    }
    # the enrolment's own searches only: time.logged searched nothing outside its batch
    assert "ChargeItem" not in fhir.searches


def test_a_duplicate_entry_without_batch_reads_only_its_charge_items() -> None:
    run = Runner([*enrolment.HANDLERS, *billing.HANDLERS])
    run.fhir = CountingFhir()
    run.run(enrolled("p1", start="2026-03-02", conditions=["Condition/c1", "Condition/c2"]))
    event = new_event(
        "carecoord.time.logged",
        "p1",
        {"program": "CCM", "minutes": 25, "activity": "care coordination",
         "by": "Practitioner/cm1", "performed_at": "2026-03-11T10:00:00+00:00"},
        id="t-1",
    )  # fmt: skip
    run.run(event)
    fhir = run.fhir
    assert isinstance(fhir, CountingFhir)
    fhir.searches.clear()
    run.run(event)
    # the handler reads its ChargeItems; the processor then finds the first run's outbox record
    assert fhir.searches == ["ChargeItem", "Basic"]
