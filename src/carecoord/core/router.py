"""Register once: `Handlers` builds a handler's `HandlerSpec` from decorated functions.

    handlers = Handlers("acme-tcm", config=AcmeConfig)

    @handlers.on("acme.patient.discharged", data=Discharged)
    def on_discharge(event: CloudEvent, data: Discharged, ctx: HandlerContext,
                     config: AcmeConfig) -> Effects: ...

    HANDLERS = handlers          # or [handlers.spec]

The router dispatches on the event type (no handler does it by hand), requires a `Patient/<id>`
subject, validates `data` against the declared model (else MalformedEvent, a dead letter) and
passes the configuration as the `config` model: it is validated when the handlers load
(`HandlerSpec.config_model`) and built once per merged configuration, not on every event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from carecoord.core.catalog import EventData, parse_data, require_patient
from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import HandlerContext, HandlerSpec

C = TypeVar("C", bound=HandlerConfig)
D = TypeVar("D", bound=EventData)
Route = Callable[[CloudEvent, D, HandlerContext, C], Effects]


class Handlers(Generic[C]):
    """One named handler (one HandlerSpec) whose event types are routed to functions."""

    def __init__(self, name: str, *, config: type[C], description: str = "") -> None:
        self.name = name
        self.config_model = config
        self.description = description
        self._routes: dict[str, Callable[[CloudEvent, HandlerContext, C], Effects]] = {}
        self._config: tuple[Mapping[str, Any], C] | None = None

    def on(self, *event_types: str, data: type[D]) -> Callable[[Route[D, C]], Route[D, C]]:
        """Route `event_types` to the decorated function, with `data` parsed as that model."""
        if not event_types:
            raise ValueError("name at least one event type")

        def register(fn: Route[D, C]) -> Route[D, C]:
            for event_type in event_types:
                if event_type in self._routes:
                    raise ValueError(f"{self.name}: {event_type!r} is routed twice")

                def route(event: CloudEvent, ctx: HandlerContext, config: C) -> Effects:
                    require_patient(event)  # no Patient subject: MalformedEvent
                    return fn(event, parse_data(event, data), ctx, config)

                self._routes[event_type] = route
            return fn

        return register

    def handle(self, event: CloudEvent, ctx: HandlerContext) -> Effects:
        route = self._routes.get(event.type)
        if route is None:
            return Effects()
        return route(event, ctx, self._config_of(ctx.config))

    def _config_of(self, config: Mapping[str, Any]) -> C:
        cached = self._config
        if cached is None or cached[0] is not config:
            cached = (config, self.config_model.of(config))
            self._config = cached
        return cached[1]

    @property
    def spec(self) -> HandlerSpec:
        return HandlerSpec(
            name=self.name,
            event_types=tuple(self._routes),
            handle=self.handle,
            default_config=self.config_model().model_dump(),
            description=self.description,
            config_model=self.config_model,
        )
