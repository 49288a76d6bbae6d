"""Register once: `Handlers` builds a handler's `HandlerSpec` from decorated functions.

    handlers = Handlers("acme-tcm", config=AcmeConfig)

    @handlers.on("acme.patient.discharged", data=Discharged)   # or @handlers.on(PatientEnrolled)
    def on_discharge(event: CloudEvent, data: Discharged, ctx: HandlerContext,
                     config: AcmeConfig) -> Effects: ...

    @handlers.on(PatientEnrolled)  # or one argument: the `Delivery` (event, data, ctx, config)
    def on_enrolled(d: Delivery[PatientEnrolled, AcmeConfig]) -> Effects: ...

    HANDLERS = handlers          # or [handlers.spec]

The router dispatches on the event type (no handler does it by hand), requires a `Patient/<id>`
subject, validates `data` against the declared model (else MalformedEvent, a dead letter) and
passes the configuration as the `config` model: it is validated when the handlers load
(`HandlerSpec.config_model`) and built again only when the merged configuration changes.

Two options serve handlers that share things: `settings=` names the part of a shared config
model a handler reads (its `default_config`, so only those keys are settable), and `include()`
adds the routes of another router of the same name (one handler written in several modules,
each route getting its own module's config model, built from the same merged configuration).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar, cast, overload

from carecoord.core.catalog import EventData, parse_data, require_patient
from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import FhirReader, HandlerContext, HandlerSpec

C = TypeVar("C", bound=HandlerConfig)
D = TypeVar("D", bound=EventData)
_Bound = Callable[[CloudEvent, HandlerContext], Effects]


@dataclass(frozen=True)
class Delivery(Generic[D, C]):
    """One routed event, for a route that takes a single argument: the envelope, its parsed
    `data`, the read-only context and the handler's validated `config`."""

    event: CloudEvent
    data: D
    ctx: HandlerContext
    config: C

    @property
    def patient_id(self) -> str:
        """The `Patient/<id>` subject's id (the router has already refused an event without)."""
        return require_patient(self.event)

    @property
    def patient(self) -> str:
        """The subject as a reference, `Patient/<id>`."""
        return f"Patient/{self.patient_id}"

    @property
    def fhir(self) -> FhirReader:
        return self.ctx.fhir

    def aware_time(self) -> datetime:
        """When the event happened (its `time`, else the clock), a naive time read as UTC."""
        at = self.event.time or self.ctx.now()
        return at if at.tzinfo else at.replace(tzinfo=UTC)


Route = Callable[[CloudEvent, D, HandlerContext, C], Effects]
DeliveryRoute = Callable[[Delivery[D, C]], Effects]


class _Register(Protocol[D, C]):
    """`on(...)`'s decorator: it takes either route form and returns it unchanged."""

    @overload
    def __call__(self, fn: Route[D, C], /) -> Route[D, C]: ...

    @overload
    def __call__(self, fn: DeliveryRoute[D, C], /) -> DeliveryRoute[D, C]: ...


class Handlers(Generic[C]):
    """One named handler (one HandlerSpec) whose event types are routed to functions."""

    @overload
    def __init__(self: Handlers[HandlerConfig], name: str, *, description: str = "") -> None: ...

    @overload
    def __init__(
        self,
        name: str,
        *,
        config: type[C],
        description: str = "",
        settings: Collection[str] | None = None,
    ) -> None: ...

    def __init__(
        self,
        name: str,
        *,
        config: type[Any] | None = None,
        description: str = "",
        settings: Collection[str] | None = None,
    ) -> None:
        """`config`: the configuration model (none: the handler takes no settings); `settings`:
        the model's fields this handler reads, when several handlers share one model (default:
        all of them)."""
        self.name = name
        # Without a model the routes get a HandlerConfig: no settings, so nothing to validate.
        self.config_model: type[C] = cast("type[C]", HandlerConfig if config is None else config)
        self.description = description
        self._configurable = config is not None
        unknown = set(settings or ()) - set(self.config_model.model_fields)
        if unknown:
            raise ValueError(f"{name}: {self.config_model.__name__} has no {sorted(unknown)}")
        self._settings = frozenset(settings) if settings is not None else None
        self._routes: dict[str, _Bound] = {}
        self._models: dict[str, type[EventData]] = {}
        self._config: tuple[Mapping[str, Any], C] | None = None

    @overload
    def on(self, model: type[D], /) -> _Register[D, C]: ...

    @overload
    def on(self, *event_types: str, data: type[D]) -> _Register[D, C]: ...

    def on(self, *event_types: str | type[D], data: type[D] | None = None) -> _Register[D, C]:
        """Route a catalog model's type (`on(SdohNeedIdentified)`), or `event_types` with `data`
        parsed as that model, to the decorated function: `fn(event, data, ctx, config)`, or
        `fn(delivery)` when it takes one parameter."""
        if data is None:
            model = event_types[0] if len(event_types) == 1 else None
            if not isinstance(model, type) or not model.event_type:
                raise ValueError("on(Model) takes one catalog model; else on(*types, data=Model)")
            data, event_types = model, (model.event_type,)
        if not event_types or not all(isinstance(t, str) for t in event_types):
            raise ValueError("name at least one event type (strings), with data=Model")
        parsed: type[D] = data

        def register(fn: Any) -> Any:
            params = list(inspect.signature(fn).parameters.values())
            one = len(params) == 1 and params[0].kind is not inspect.Parameter.VAR_POSITIONAL

            def route(event: CloudEvent, ctx: HandlerContext) -> Effects:
                require_patient(event)  # no Patient subject: MalformedEvent
                data, config = parse_data(event, parsed), self._config_of(ctx.config)
                if one:
                    return cast("Effects", fn(Delivery(event, data, ctx, config)))
                return cast("Effects", fn(event, data, ctx, config))

            for event_type in event_types:
                self._add(str(event_type), route, parsed)
            return fn

        return cast("_Register[D, C]", register)

    def include(self, group: Handlers[Any]) -> None:
        """Add `group`'s routes (after this router's own, in their order). It must carry this
        handler's name, and this handler's config model must contain its model, so validating
        the configuration at load also validates what the group's routes read."""
        if group.name != self.name:
            raise ValueError(f"{self.name}: cannot include the routes of {group.name!r}")
        if not issubclass(self.config_model, group.config_model):
            raise ValueError(
                f"{self.name}: {self.config_model.__name__} must extend "
                f"{group.config_model.__name__} to include its routes"
            )
        for event_type, route in group._routes.items():
            self._add(event_type, route, group._models[event_type])

    def _add(self, event_type: str, route: _Bound, data: type[EventData]) -> None:
        if event_type in self._routes:
            raise ValueError(f"{self.name}: {event_type!r} is routed twice")
        self._routes[event_type] = route
        self._models[event_type] = data

    @property
    def routes(self) -> Mapping[str, type[EventData]]:
        """The routed event types (in registration order), each with its data model."""
        return MappingProxyType(self._models)

    def handle(self, event: CloudEvent, ctx: HandlerContext) -> Effects:
        route = self._routes.get(event.type)
        if route is None:
            return Effects()
        return route(event, ctx)

    def _config_of(self, config: Mapping[str, Any]) -> C:
        # Compared by value, not identity: a caller may change its configuration mapping in
        # place between events, and must not get the model of the old values.
        cached = self._config
        if cached is None or cached[0] != config:
            cached = (copy.deepcopy(dict(config)), self.config_model.of(config))
            self._config = cached
        return cached[1]

    @property
    def spec(self) -> HandlerSpec:
        defaults = self.config_model().model_dump() if self._configurable else {}
        if self._settings is not None:
            defaults = {k: v for k, v in defaults.items() if k in self._settings}
        return HandlerSpec(
            name=self.name,
            event_types=tuple(self._routes),
            handle=self.handle,
            default_config=defaults,
            description=self.description,
            config_model=self.config_model if self._configurable else None,
        )
