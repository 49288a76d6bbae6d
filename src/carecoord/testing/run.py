"""`run_handler`: one event through one handler; `run_events`: events through the real processor.
Both the way the runtime runs them, without servers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carecoord.core.effects import Effects, Emit
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.core.router import Handlers
from carecoord.errors import CarecoordError
from carecoord.fhir.bundles import TransactionResult
from carecoord.handlers.loader import check_config, merge_config
from carecoord.handlers.processing import HandlerProcessor
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


@dataclass(frozen=True)
class EventsRun:
    """What the handlers did with a sequence of events, run as the service runs them: the
    events emitted (in order), the events the service would dead-letter with their error, and
    the FHIR state after all of it."""

    emitted: list[Emit]
    dead_letters: list[tuple[CloudEvent, CarecoordError]]
    fhir: InMemoryFhir

    @property
    def emitted_types(self) -> list[str]:
        return [e.type for e in self.emitted]


def run_events(
    handlers: Handlers[Any] | HandlerSpec | Sequence[HandlerSpec],
    *events: CloudEvent,
    fhir: InMemoryFhir | None = None,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    now: datetime = NOW,
) -> EventsRun:
    """Run `events`, in order, through the real `HandlerProcessor` (routing by type, all of an
    event's handlers in one transaction, the outbox, the re-run on a version conflict) on an
    `InMemoryFhir`. `config` maps handler name -> overrides of its defaults, validated as at
    start-up. An event that fails permanently (MalformedEvent, HandlerError, ...) is recorded in
    `dead_letters` and the run goes on, as the service would; any other error propagates."""
    specs = _specs(handlers)
    fhir = fhir if fhir is not None else InMemoryFhir()
    merged = {}
    for spec in specs:
        merged[spec.name] = merge_config(spec, (config or {}).get(spec.name, {}))
        check_config(spec, merged[spec.name])
    processor = HandlerProcessor(specs, fhir, config=merged, clock=lambda: now)
    emitted: list[Emit] = []
    dead: list[tuple[CloudEvent, CarecoordError]] = []
    for event in events:
        try:
            emitted.extend(processor.process(event))
        except CarecoordError as exc:
            if exc.transient or exc.rerun or exc.unavailable:
                raise
            dead.append((event, exc))
    return EventsRun(emitted=emitted, dead_letters=dead, fhir=fhir)


def _specs(handlers: Handlers[Any] | HandlerSpec | Sequence[HandlerSpec]) -> list[HandlerSpec]:
    if isinstance(handlers, Handlers):
        return [handlers.spec]
    if isinstance(handlers, HandlerSpec):
        return [handlers]
    return list(handlers)
