"""`Handlers` options the built-in handlers need: a handler without settings, a subset of a shared
config model, one handler's routes written in two modules, and a configuration changed in place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from carecoord import CloudEvent, Effects, EventData, HandlerConfig, HandlerContext, Handlers
from carecoord.core.router import Delivery
from carecoord.errors import ConfigError, MalformedEvent
from carecoord.testing import InMemoryFhir, events, run_handler


class Shared(HandlerConfig):
    config_name: ClassVar[str] = "shared"

    owner: str = "Organization/pool"
    days: int = 2
    unused: bool = False


class Wider(Shared):
    lead: str | None = None


class Ping(EventData):
    n: int


def _ctx(config: dict[str, Any]) -> HandlerContext:
    return HandlerContext(fhir=InMemoryFhir(), config=config, clock=lambda: datetime.now(UTC))


def _echo(seen: list[Any]) -> Any:
    def route(event: CloudEvent, data: Ping, ctx: HandlerContext, config: Any) -> Effects:
        seen.append((event.type, data.n, config))
        return Effects()

    return route


def test_a_handler_without_settings_declares_none() -> None:
    handlers = Handlers("plain", description="no settings")
    handlers.on("t.ping", data=Ping)(_echo([]))
    spec = handlers.spec
    assert (spec.default_config, spec.config_model) == ({}, None)
    with pytest.raises(ConfigError, match="has no setting 'days'"):
        run_handler(spec, events.event("t.ping", "p1", {"n": 1}), config={"days": 3})


def test_settings_limit_the_defaults_to_what_the_handler_reads() -> None:
    handlers = Handlers("part", config=Shared, settings=("days", "owner"))
    handlers.on("t.ping", data=Ping)(_echo([]))
    assert handlers.spec.default_config == {"owner": "Organization/pool", "days": 2}
    with pytest.raises(ConfigError, match="has no setting 'unused'"):
        run_handler(handlers.spec, events.event("t.ping", "p1", {"n": 1}), config={"unused": True})
    with pytest.raises(ValueError, match="no \\['dayz'\\]"):
        Handlers("typo", config=Shared, settings=("dayz",))


def test_included_routes_follow_the_own_ones_and_get_their_own_config_model() -> None:
    seen: list[Any] = []
    main = Handlers("two-modules", config=Wider)
    part = Handlers("two-modules", config=Shared)
    part.on("t.later", "t.last", data=Ping)(_echo(seen))
    main.on("t.first", data=Ping)(_echo(seen))
    main.include(part)
    spec = main.spec
    assert spec.event_types == ("t.first", "t.later", "t.last")
    assert set(spec.default_config) == {"owner", "days", "unused", "lead"}
    config = {**spec.default_config, "days": 5, "lead": "Practitioner/l"}
    for event_type in spec.event_types:
        spec.handle(events.event(event_type, "p1", {"n": 1}), _ctx(config))
    assert [(t, type(c).__name__, c.days) for t, _, c in seen] == [
        ("t.first", "Wider", 5),
        ("t.later", "Shared", 5),
        ("t.last", "Shared", 5),
    ]
    assert spec.handle(events.event("t.other", "p1", {"n": 1}), _ctx(config)) == Effects()


def test_include_refuses_another_name_an_unvalidated_model_or_a_type_twice() -> None:
    part = Handlers("a", config=Wider)
    part.on("t.x", data=Ping)(_echo([]))
    with pytest.raises(ValueError, match="cannot include"):
        Handlers("b", config=Wider).include(part)
    with pytest.raises(ValueError, match="must extend Wider"):
        Handlers("a", config=Shared).include(part)
    twice = Handlers("a", config=Wider)
    twice.on("t.x", data=Ping)(_echo([]))
    with pytest.raises(ValueError, match="routed twice"):
        twice.include(part)


def test_a_bad_value_for_an_included_route_fails_at_load() -> None:
    main = Handlers("loaded", config=Wider)
    part = Handlers("loaded", config=Shared)
    part.on("t.x", data=Ping)(_echo([]))
    main.include(part)
    # run_handler validates the merged configuration as the loader does at start-up
    with pytest.raises(ConfigError, match="CARECOORD_HANDLERS__loaded__days is invalid"):
        run_handler(main.spec, events.event("t.x", "p1", {"n": 1}), config={"days": [1]})


def test_a_configuration_changed_in_place_reaches_the_next_event() -> None:
    seen: list[Any] = []
    handlers = Handlers("live", config=Shared)
    handlers.on("t.ping", data=Ping)(_echo(seen))
    config: dict[str, Any] = dict(handlers.spec.default_config)
    ctx = _ctx(config)
    handlers.spec.handle(events.event("t.ping", "p1", {"n": 1}), ctx)
    config["days"] = 9
    handlers.spec.handle(events.event("t.ping", "p1", {"n": 2}), ctx)
    assert [c.days for _, _, c in seen] == [2, 9]


def test_a_one_argument_route_gets_the_delivery_and_the_four_argument_form_still_works() -> None:
    seen: list[Any] = []
    handlers = Handlers("both", config=Shared)

    @handlers.on("t.one", data=Ping)
    def one(d: Delivery[Ping, Shared]) -> Effects:
        seen.append((d.event.type, d.data.n, d.patient_id, d.config.days, d.fhir is d.ctx.fhir))
        return Effects()

    handlers.on("t.four", data=Ping)(_echo(seen))
    config = {**handlers.spec.default_config, "days": 4}
    handlers.spec.handle(events.event("t.one", "p1", {"n": 1}), _ctx(config))
    handlers.spec.handle(events.event("t.four", "p2", {"n": 2}), _ctx(config))
    assert seen[0] == ("t.one", 1, "p1", 4, True)
    assert seen[1][:2] == ("t.four", 2) and seen[1][2].days == 4
    with pytest.raises(MalformedEvent, match="Patient"):
        handlers.spec.handle(
            events.event("t.one", "p1", {"n": 1}).model_copy(update={"subject": "Group/g"}),
            _ctx(config),
        )


def test_a_delivery_reads_a_naive_event_time_as_utc_and_falls_back_to_the_clock() -> None:
    times: list[datetime] = []
    handlers = Handlers("timed")

    @handlers.on("t.ping", data=Ping)
    def timed(d: Delivery[Ping, HandlerConfig]) -> Effects:
        times.append(d.aware_time())
        return Effects()

    clock = datetime(2026, 3, 1, 12, tzinfo=UTC)
    ctx = HandlerContext(fhir=InMemoryFhir(), config={}, clock=lambda: clock)
    ping = events.event("t.ping", "p1", {"n": 1})
    handlers.spec.handle(ping.model_copy(update={"time": datetime(2026, 2, 1, 8)}), ctx)
    handlers.spec.handle(ping.model_copy(update={"time": None}), ctx)
    assert times == [datetime(2026, 2, 1, 8, tzinfo=UTC), clock]


def test_a_route_taking_star_args_still_gets_the_four_arguments() -> None:
    seen: list[int] = []
    handlers = Handlers("star")

    @handlers.on("t.ping", data=Ping)
    def star(*args: Any) -> Effects:
        seen.append(len(args))
        return Effects()

    handlers.spec.handle(events.event("t.ping", "p1", {"n": 1}), _ctx({}))
    assert seen == [4]
