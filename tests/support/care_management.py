"""Helpers for the care-management handler tests (enrolment, outreach, care tasks, caseload,
reassignment, the sweeper) on `carecoord.testing.InMemoryFhir`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.testing import InMemoryFhir

FakeFhir = InMemoryFhir  # the public test kit's in-memory FHIR server


class Runner:
    """Runs handler specs the way the processor does: merged effects, one apply per event."""

    def __init__(self, specs: Sequence[HandlerSpec], config: Mapping[str, Any] | None = None):
        self.fhir = FakeFhir()
        self.specs = list(specs)
        self.config = dict(config or {})
        self.emitted: list[Any] = []

    def effects(self, event: CloudEvent) -> Effects:
        ctx = HandlerContext(self.fhir, self.config, lambda: datetime(2030, 1, 1, tzinfo=UTC))
        merged = Effects()
        for spec in self.specs:
            if event.type in spec.event_types:
                merged.extend(spec.handle(event, ctx))
        return merged

    def run(self, event: CloudEvent) -> Effects:
        effects = self.effects(event)
        if effects.writes:
            self.fhir.apply(effects.writes)
        self.emitted.extend(effects.emits)
        return effects


def enrolled(patient: str, *, start: str = "2024-05-03", **data: Any) -> CloudEvent:
    consent = {"date": start, "method": "verbal", "recorded_by": "Practitioner/doc"}
    body = {"program": "CCM", "provider": "Practitioner/doc", "start": start, "consent": consent}
    body.update(data)
    if body["consent"] is None:  # enrolled without consent: pending
        del body["consent"]
    return new_event("carecoord.patient.enrolled", patient, body, id=f"enrol-{patient}-{start}")


def attempted(
    patient: str, n: int, outcome: str, *, at: str = "2024-05-1{n}T10:00:00Z", **data: Any
) -> CloudEvent:
    body = {
        "channel": "phone",
        "outcome": outcome,
        "attempted_at": at.format(n=n),
        "by": "Practitioner/cm1",
        **data,
    }
    return new_event("carecoord.outreach.attempted", patient, body, id=f"att-{patient}-{n}")
