"""Glue between the runtime and the handlers: one event -> handlers -> ONE FHIR transaction.

`HandlerProcessor` runs every enabled handler for the event's type against a read-only FHIR view,
merges their effects, applies all writes as one transaction and returns the emits for the runtime
to produce; the emits are recorded in the same transaction (carecoord.caremodel.outbox) so that a
redelivery after a crash re-emits them. The outbox is looked up only when the event may have been
applied before (see `outbox.emits_after_apply`): not on the common path, where the
transaction's conditional creates report that they created everything. A version conflict
(412/409) means a handler read a stale resource: re-run the handlers (they read again) a few
times, then give up with a transient error so the runtime retries later.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from carecoord.caremodel.outbox import add_outbox, emits_after_apply, merge_emits, stored_emits
from carecoord.core import log_context, tracing
from carecoord.core.catalog import known_type
from carecoord.core.effects import Effects, Emit, FhirWrite
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import FhirReader, HandlerContext, HandlerSpec
from carecoord.errors import CarecoordError, HandlerError, MalformedEvent
from carecoord.fhir.errors import FhirConflict
from carecoord.fhir.event_reads import EventReads
from carecoord.fhir.lazy import lean

log = logging.getLogger(__name__)


class TransactionalFhir(FhirReader, Protocol):
    """What the processor needs from a FHIR client: reads plus one-transaction writes."""

    def apply(self, writes: Sequence[FhirWrite]) -> object:
        """A client may also take `known=` (what the event's reads learnt; see FhirClient.apply):
        the processor passes it where the signature has it."""
        ...


def _takes_known(fhir: object) -> bool:
    try:
        return "known" in inspect.signature(getattr(fhir, "apply")).parameters  # noqa: B009
    except (TypeError, ValueError):
        return False


class ConflictRetriesExhausted(FhirConflict):
    """The handlers' writes kept conflicting with concurrent changes; worth retrying later."""

    transient = True


def _utc_now() -> datetime:
    return datetime.now(UTC)


class HandlerProcessor:
    """Implements the runtime's EventProcessor protocol with a table of handlers."""

    def __init__(
        self,
        handlers: Sequence[HandlerSpec],
        fhir: TransactionalFhir,
        *,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        clock: Callable[[], datetime] = _utc_now,
        max_conflict_retries: int = 3,
        observe_handler: Callable[[str, float], None] | None = None,
    ) -> None:
        """`config` maps handler name -> its merged configuration (default: the spec's defaults).
        `observe_handler(name, seconds)` is called after each handler run (for metrics)."""
        self._by_type: dict[str, list[HandlerSpec]] = {}
        for spec in handlers:
            for event_type in spec.event_types:
                self._by_type.setdefault(event_type, []).append(spec)
        self._fhir = fhir
        self._takes_known = _takes_known(fhir)
        self._config = {s.name: (config or {}).get(s.name, s.default_config) for s in handlers}
        self._clock = clock
        self._max_conflict_retries = max_conflict_retries
        self._observe = observe_handler

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(self._by_type)

    def process(self, event: CloudEvent) -> Sequence[Emit]:
        # resources built and read as JSON, validated only where read (fhir/lazy.py)
        with lean():
            return self._process(event)

    def _process(self, event: CloudEvent) -> Sequence[Emit]:
        specs = self._by_type.get(event.type)
        if not specs:
            raise MalformedEvent(  # an unknown type may be free text: named only if in the catalog
                "no enabled handler for this event type",
                event_id=event.id,
                event_type=known_type(event.type),
            )
        tracing.set_attribute("carecoord.handlers", [s.name for s in specs])
        attempt = 0
        while True:
            effects, reads = self._run(specs, event)
            if not effects.writes:
                # Nothing (left) to write: perhaps applied before and never announced.
                stored = stored_emits(self._fhir, event)
                if stored is not None:
                    log.info("event already applied; re-emitting")
                return merge_emits(stored, effects.emits)
            add_outbox(effects, event, self._clock())
            try:
                result = (
                    self._fhir.apply(effects.writes, known=reads.known())  # type: ignore[call-arg]
                    if self._takes_known
                    else self._fhir.apply(effects.writes)
                )
            except FhirConflict as exc:
                attempt += 1
                if attempt > self._max_conflict_retries:
                    raise ConflictRetriesExhausted(
                        f"event {event.id} ({event.type}) still conflicts after "
                        f"{self._max_conflict_retries} re-runs",
                        status=exc.status,
                        request=exc.request,
                    ) from exc
                log.info("version conflict; re-running handlers", extra={"attempt": attempt})
                continue
            return emits_after_apply(self._fhir, event, effects, result)

    def _run(self, specs: Sequence[HandlerSpec], event: CloudEvent) -> tuple[Effects, EventReads]:
        merged = Effects()
        reads = EventReads(self._fhir)  # a resource one handler's search returned is not re-read
        for spec in specs:
            ctx = HandlerContext(fhir=reads, config=self._config[spec.name], clock=self._clock)
            started = time.perf_counter()
            try:
                with log_context.bind(handler=spec.name):  # on the handler's own log lines
                    merged.extend(spec.handle(event, ctx))
            except CarecoordError:
                raise
            except Exception as exc:
                # A handler bug: dead-letter the event (replayable after a fix). The exception's
                # text may hold resource content, so only its type is reported.
                raise HandlerError(
                    f"handler {spec.name!r} crashed with {type(exc).__name__}",
                    event_id=event.id,
                    event_type=event.type,
                    handler=spec.name,
                ) from exc
            finally:
                if self._observe is not None:
                    self._observe(spec.name, time.perf_counter() - started)
        return merged, reads
