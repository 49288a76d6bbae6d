"""What billing writes and announces when a threshold is reached: the ChargeItems a biller reads
and the threshold-reached event, the same on every replay, on lenient and strict servers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.resource import Resource

from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import carecoord_identifier
from carecoord.fhir.errors import FhirInvalid
from carecoord.handlers.billing.handler import (
    CHARGE_ITEM_ID,
    HANDLERS,
    THRESHOLD_REACHED,
    threshold_value,
)
from carecoord.handlers.care.event_ids import derived_id
from support.billing import enrol
from support.handler_context import NOW, FakeFhir, ctx, event

handle = HANDLERS[0].handle
LATER = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)  # the clock when the event has no time


def time_logged(
    minutes: float,
    *,
    patient: str = "p1",
    by: str = "Practitioner/cm-1",
    id_: str | None = None,
    at: datetime | None = NOW,
) -> Any:
    data = {
        "program": "CCM",
        "minutes": minutes,
        "activity": "care coordination",
        "by": by,
        "performed_at": "2025-03-05T10:00:00+00:00",
    }
    return event("carecoord.time.logged", patient, data, id_).model_copy(update={"time": at})


def run(fhir: FakeFhir, ev: Any) -> Any:
    fx = handle(ev, ctx(fhir) if ev.time else _ctx_at(fhir, LATER))
    fhir.apply(fx)
    return fx


def _ctx_at(fhir: FakeFhir, now: datetime) -> Any:
    c = ctx(fhir)
    return type(c)(fhir=c.fhir, config=c.config, clock=lambda: now)


def items(fhir: FakeFhir, status: str) -> list[Any]:
    return [c for c in fhir.all("ChargeItem") if c.status == status]


def ident(resource: Any) -> tuple[str, str]:
    found = carecoord_identifier(resource)
    assert found is not None
    return found


def test_the_threshold_is_recorded_and_announced_with_everything_a_biller_needs() -> None:
    fhir = FakeFhir()
    enrol(fhir)
    run(fhir, time_logged(12, id_="t-1"))
    fx = run(fhir, time_logged(8.5, id_="t-2"))
    entries = items(fhir, "not-billable")
    assert {(e.subject.reference, e.quantity.value) for e in entries} == {
        ("Patient/p1", 12),
        ("Patient/p1", 8.5),
    }
    for entry in entries:
        q = entry.quantity
        assert (q.unit, q.system, q.code) == ("min", t.UCUM, "min")
        assert entry.performer[0].actor.reference == "Practitioner/cm-1"
    (claim,) = items(fhir, "billable")
    assert claim.subject.reference == "Patient/p1"
    assert claim.performer[0].actor.reference == "Practitioner/cm-1"
    assert claim.enteredDate == NOW  # the event's time
    # The time entries it counts, then the care plan's Conditions (billing-rules.md B21).
    assert [s.reference for s in claim.supportingInformation] == [
        *(
            f"ChargeItem/{e.id}"
            for e in sorted(entries, key=lambda e: e.quantity.value, reverse=True)
        ),
        "Condition/p1-c0",
        "Condition/p1-c1",
    ]
    system, value = ident(claim)
    (emit,) = fx.emits
    assert (emit.type, emit.subject, emit.id) == (
        THRESHOLD_REACHED,
        "Patient/p1",
        derived_id(CHARGE_ITEM_ID, threshold_value("p1", "CCM", "2025-03", "99490", 1)),
    )
    assert emit.data == {
        "program": "CCM",
        "month": "2025-03",
        "cpt": "99490",
        "unit": 1,
        "charge_item_identifier": f"{system}|{value}",
        "total_minutes": 20.5,
    }

    # The event that crossed it, delivered again: announced again, naming the stored ChargeItem.
    again = run(fhir, time_logged(8.5, id_="t-2"))
    (repeat,) = again.emits
    assert (repeat.type, repeat.subject, repeat.id) == (emit.type, emit.subject, emit.id)
    assert repeat.data == {**emit.data, "charge_item": f"ChargeItem/{claim.id}"}
    assert len(items(fhir, "billable")) == 1


def test_time_logged_by_an_organisation_names_no_performer_and_uses_the_clock() -> None:
    fhir = FakeFhir()
    enrol(fhir)
    run(fhir, time_logged(25, by="Organization/clinic", at=None))
    (claim,) = items(fhir, "billable")
    # No one performed it by name: only the care plan's billing practitioner is named.
    assert [(p.function.coding[0].code, p.actor.reference) for p in claim.performer] == [
        ("billing-practitioner", "Practitioner/dr-1")
    ]
    assert not claim.enterer
    assert claim.enteredDate == LATER  # no event time: when it was processed
    (entry,) = items(fhir, "not-billable")
    assert not entry.performer


def test_a_patient_with_a_long_id_is_billed_too() -> None:
    fhir = FakeFhir()
    patient = "p" * 64  # the longest FHIR id: the identifier value is hashed
    enrol(fhir, patient=patient)
    fx = run(fhir, time_logged(45, patient=patient))
    assert sorted(e.data["cpt"] for e in fx.emits) == ["99439", "99490"]  # in no set order
    assert {c.subject.reference for c in items(fhir, "billable")} == {f"Patient/{patient}"}


class BlindFhir(FakeFhir):
    """A server that ignores the ChargeItem `subject` search parameter (returns every patient's)."""

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        if resource_type == "ChargeItem":
            return super().search(resource_type, {})
        return super().search(resource_type, params)


# FHIR R4 search parameters: those common to every resource (and the result parameters), and
# ChargeItem's own (https://hl7.org/fhir/R4/chargeitem.html#search).
COMMON_PARAMS = frozenset(
    {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_text", "_content",
     "_list", "_has", "_type", "_query", "_filter", "_sort", "_count", "_include",
     "_revinclude", "_summary", "_total", "_elements", "_contained", "_containedType"}
)  # fmt: skip
CHARGE_ITEM_PARAMS = COMMON_PARAMS | {
    "account", "code", "context", "entered-date", "enterer", "factor-override", "identifier",
    "occurrence", "patient", "performer-actor", "performer-function", "price-override",
    "quantity", "requesting-organization", "service", "subject",
}  # fmt: skip


class StrictFhir(FakeFhir):
    """A server with strict search handling: 400 for a ChargeItem parameter it does not know."""

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        keys = set(params) if isinstance(params, Mapping) else {k for k, _ in params}
        if resource_type == "ChargeItem" and keys - CHARGE_ITEM_PARAMS:
            raise FhirInvalid("unknown search parameter", status=400)
        return super().search(resource_type, params)


def test_another_patients_minutes_never_count_even_if_the_server_returns_them() -> None:
    fhir = BlindFhir()
    enrol(fhir)
    enrol(fhir, patient="p2")
    run(fhir, time_logged(15, patient="p2"))
    assert run(fhir, time_logged(10, patient="p1")).emits == []
    assert items(fhir, "billable") == []


def test_billing_works_on_a_server_with_strict_search_handling() -> None:
    fhir = StrictFhir()
    enrol(fhir)
    run(fhir, time_logged(15))
    assert [e.data["cpt"] for e in run(fhir, time_logged(5)).emits] == ["99490"]
