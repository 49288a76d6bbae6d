"""Helpers for the care-management handler tests (enrolment, outreach, care tasks, caseload,
reassignment, the sweeper) on `carecoord.testing.InMemoryFhir`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carecoord.core.effects import Emit
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.core.handler import HandlerSpec
from carecoord.handlers.processing import HandlerProcessor
from carecoord.testing import InMemoryFhir

FakeFhir = InMemoryFhir  # the public test kit's in-memory FHIR server
NOW = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Step:
    """One event through the processor: what it emitted, and whether it wrote to FHIR."""

    emits: Sequence[Emit]
    wrote: bool


class Runner:
    """Runs events through the real `HandlerProcessor` (routing, one transaction per event, the
    outbox) on one `InMemoryFhir`, every spec given `config` over its defaults, at a fixed clock."""

    def __init__(self, specs: Sequence[HandlerSpec], config: Mapping[str, Any] | None = None):
        self.fhir = FakeFhir()
        self.specs = list(specs)
        self.config = dict(config or {})
        self.emitted: list[Emit] = []

    def run(self, event: CloudEvent) -> Step:
        merged = {s.name: {**s.default_config, **self.config} for s in self.specs}
        processor = HandlerProcessor(self.specs, self.fhir, config=merged, clock=lambda: NOW)
        before = self.fhir.transactions
        emits = processor.process(event)
        self.emitted.extend(emits)
        return Step(emits=emits, wrote=self.fhir.transactions > before)


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
