"""`run_handler`: one event through one handler, the way the runtime runs it, without servers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.fhir.bundles import TransactionResult
from carecoord.handlers.loader import check_config, merge_config
from carecoord.testing.fhir import InMemoryFhir

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
"""The clock `run_handler` gives a handler unless told otherwise."""


@dataclass(frozen=True)
class HandlerRun:
    """What one handler did with one event: its effects, and the FHIR state after they applied."""

    effects: Effects
    fhir: InMemoryFhir
    result: TransactionResult | None
    """The transaction's outcome (None when the handler wrote nothing)."""

    @property
    def emitted_types(self) -> list[str]:
        return [e.type for e in self.effects.emits]


def run_handler(
    spec: HandlerSpec,
    event: CloudEvent,
    *,
    fhir: InMemoryFhir | None = None,
    config: Mapping[str, Any] | None = None,
    now: datetime = NOW,
) -> HandlerRun:
    """Run `spec` on `event` and apply its writes to `fhir` as one transaction.

    `config` overrides the spec's `default_config` and is validated as when the handlers load
    (an unknown key or a bad value raises ConfigError). An error the handler raises (e.g.
    MalformedEvent, HandlerError) propagates, and nothing is written. The event's type must be
    one the spec handles.
    """
    if event.type not in spec.event_types:
        raise ValueError(f"handler {spec.name!r} does not handle {event.type!r}")
    fhir = fhir if fhir is not None else InMemoryFhir()
    merged = merge_config(spec, config or {})
    check_config(spec, merged)
    effects = spec.handle(event, HandlerContext(fhir=fhir, config=merged, clock=lambda: now))
    result = fhir.apply(effects.writes) if effects.writes else None
    return HandlerRun(effects=effects, fhir=fhir, result=result)
