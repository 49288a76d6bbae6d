"""The handler contract: one event + a read-only context in, effects out.

A handler is `Handler = Callable[[CloudEvent, HandlerContext], Effects]`; it reads FHIR through
the context's `FhirReader` and does no I/O of its own. A `HandlerSpec` names it, the event types
it takes and its configuration (`default_config`, validated by `config_model` when the handlers
load, at start-up). Discovery (built-in modules, entry points, `CARECOORD_HANDLER_MODULES`) is
`carecoord.handlers.loader`'s; declaring specs with a decorator is `carecoord.core.router`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from fhir.resources.R4B.resource import Resource

from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent


class FhirReader(Protocol):
    """The read-only FHIR view a handler gets. Returns fhir.resources objects (R4B by default)."""

    def read(self, resource_type: str, resource_id: str) -> Resource: ...

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        """All matches (every page followed); `_include`d resources are returned too."""
        ...


@dataclass(frozen=True)
class HandlerContext:
    fhir: FhirReader
    config: Mapping[str, Any]
    clock: Callable[[], datetime]

    def now(self) -> datetime:
        return self.clock()


Handler = Callable[[CloudEvent, HandlerContext], Effects]


@dataclass(frozen=True)
class HandlerSpec:
    """A named handler for one or more event types, with its default configuration."""

    name: str
    event_types: tuple[str, ...]
    handle: Handler
    default_config: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    # Validates the merged configuration at load, so a bad value stops start-up instead of
    # failing every event (the handler still reads it with `config_model.of(ctx.config)`).
    config_model: type[HandlerConfig] | None = None
