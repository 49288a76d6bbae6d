"""Build the active handler table: discover, enable/disable, merge per-handler configuration.

Sources, in order: the built-in modules (`BUILTIN_MODULES`; one that is not there yet is skipped),
extra modules named by the user (`CARECOORD_HANDLER_MODULES`), and the entry points of group
`carecoord.handlers`. Every handler name must be unique across all of them.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from carecoord.core.handler import HandlerSpec
from carecoord.core.router import Handlers
from carecoord.errors import ConfigError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "carecoord.handlers"

BUILTIN_MODULES: tuple[str, ...] = (
    "carecoord.handlers.programs.enrolment",
    "carecoord.handlers.programs.outreach",
    "carecoord.handlers.programs.care_tasks",
    "carecoord.handlers.referrals.handler",
    "carecoord.handlers.clinical.routing",
    "carecoord.handlers.billing.handler",
    "carecoord.handlers.programs.reassignment",
    "carecoord.handlers.programs.consent",
    "carecoord.handlers.programs.disenrolment",
    "carecoord.handlers.programs.tcm",
    "carecoord.handlers.assessments.handler",
)


@dataclass(frozen=True)
class Discovered:
    spec: HandlerSpec
    origin: (
        str  # "module carecoord.handlers.programs.outreach" or "entry point acme = acme.handlers"
    )


@dataclass(frozen=True)
class HandlerTable:
    """The enabled handlers (discovery order) with their merged configuration."""

    specs: tuple[HandlerSpec, ...]
    configs: Mapping[str, Mapping[str, Any]]
    known: tuple[str, ...]  # every discovered name, enabled or not

    def for_type(self, event_type: str) -> list[HandlerSpec]:
        return [s for s in self.specs if event_type in s.event_types]

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(t for s in self.specs for t in s.event_types)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)


def discover(
    *,
    builtin_modules: Iterable[str] = BUILTIN_MODULES,
    extra_modules: Iterable[str] = (),
    group: str = ENTRY_POINT_GROUP,
) -> list[Discovered]:
    """Every declared handler; raise ConfigError on duplicate names or broken declarations."""
    found: list[Discovered] = []
    for name in builtin_modules:
        module = _import(name, optional=True)
        if module is not None:
            found += [Discovered(s, f"module {name}") for s in _module_specs(module, name)]
    for name in extra_modules:
        module = _import(name, optional=False)
        assert module is not None
        found += [Discovered(s, f"module {name}") for s in _module_specs(module, name)]
    for ep in entry_points(group=group):
        found += [Discovered(s, f"entry point {ep.name} = {ep.value}") for s in _ep_specs(ep)]

    seen: dict[str, str] = {}
    for d in found:
        if d.spec.name in seen:
            raise ConfigError(
                f"two handlers are named {d.spec.name!r} ({seen[d.spec.name]} and {d.origin}): "
                "rename one, or uninstall the package that duplicates it"
            )
        seen[d.spec.name] = d.origin
    return found


def load_handlers(
    *,
    enabled: Sequence[str] = (),
    disabled: Sequence[str] = (),
    config: Mapping[str, Mapping[str, Any]] | None = None,
    builtin_modules: Iterable[str] = BUILTIN_MODULES,
    extra_modules: Iterable[str] = (),
    group: str = ENTRY_POINT_GROUP,
) -> HandlerTable:
    """Discover handlers, keep the `enabled` ones (all when empty) minus `disabled`, and merge
    `config[name]` over each spec's `default_config`."""
    found = discover(builtin_modules=builtin_modules, extra_modules=extra_modules, group=group)
    known = tuple(d.spec.name for d in found)
    config = config or {}
    for what, names in (
        ("CARECOORD_HANDLERS_ENABLED", enabled),
        ("CARECOORD_HANDLERS_DISABLED", disabled),
        ("CARECOORD_HANDLERS__<name>", list(config)),
    ):
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ConfigError(
                f"{what} names unknown handler(s) {', '.join(unknown)}: "
                f"known handlers are {', '.join(sorted(known)) or '(none)'}"
            )
    specs = tuple(
        d.spec
        for d in found
        if (not enabled or d.spec.name in enabled) and d.spec.name not in disabled
    )
    configs = {s.name: merge_config(s, config.get(s.name, {})) for s in specs}
    for spec in specs:
        check_config(spec, configs[spec.name])
    return HandlerTable(specs=specs, configs=configs, known=known)


def merge_config(spec: HandlerSpec, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`overrides` over `spec.default_config`. Keys must be declared in the defaults (a typo must
    not be ignored silently); strings from environment variables take the default's type."""
    merged = dict(spec.default_config)
    for key, value in overrides.items():
        where = f"CARECOORD_HANDLERS__{spec.name}__{key}"
        if key not in spec.default_config:
            known = ", ".join(sorted(spec.default_config)) or "(none)"
            raise ConfigError(
                f"{where}: handler {spec.name!r} has no setting {key!r}; its settings are {known}"
            )
        merged[key] = _coerce(value, spec.default_config[key], where)
    return merged


def check_config(spec: HandlerSpec, merged: Mapping[str, Any]) -> None:
    """Validate `merged` with the spec's `config_model`; a ConfigError names each bad setting by
    its variable and says how to fix it (never echoing the value)."""
    if spec.config_model is None:
        return
    try:
        spec.config_model.model_validate(dict(merged))
    except ValidationError as exc:
        problems = [_problem(spec, dict(e)) for e in exc.errors()]
        raise ConfigError("; ".join(problems)) from None


_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">")}
_BOUNDS |= {"less_than_equal": ("le", "<="), "less_than": ("lt", "<")}


def _problem(spec: HandlerSpec, error: dict[str, Any]) -> str:
    key, *inner = error["loc"] or ("",)
    where = f"CARECOORD_HANDLERS__{spec.name}" + (f"__{key}" if key else "")
    bound = _BOUNDS.get(error["type"])
    why = f"must be {bound[1]} {error['ctx'][bound[0]]}" if bound else error["msg"]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in inner).lstrip(".")
    why = f"{path}: {why}" if path else why
    default = spec.default_config.get(str(key))
    fix = "set a valid value"
    if default is None and key in spec.default_config:
        fix += ", or unset it"
    elif isinstance(default, bool | int | float | str):
        fix += f", or unset it for the default ({default!r})"
    return f"{where} is invalid ({why}): {fix}"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(value: Any, default: Any, where: str) -> Any:
    if not isinstance(value, str) or isinstance(default, str):
        return value
    text = value.strip()
    try:
        if isinstance(default, bool):
            if text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
            raise ValueError
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, list | dict | tuple):
            parsed = json.loads(text)
            if not isinstance(parsed, list | dict):
                raise ValueError
            return parsed
    except ValueError:
        expected = type(default).__name__
        raise ConfigError(f"{where} is invalid: expected {expected} like {default!r}") from None
    return value


def _import(name: str, *, optional: bool) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only the module itself being absent is skipped; a missing dependency inside it is a bug.
        if optional and exc.name == name:
            log.debug("built-in handler module not present", extra={"module": name})
            return None
        raise ConfigError(
            f"handler module {name!r} cannot be imported ({type(exc).__name__}: {exc}): "
            "check CARECOORD_HANDLER_MODULES and that its package is installed"
        ) from exc
    except ImportError as exc:
        raise ConfigError(
            f"handler module {name!r} failed to import ({type(exc).__name__}: {exc})"
        ) from exc


def _module_specs(module: ModuleType, name: str) -> list[HandlerSpec]:
    specs = getattr(module, "HANDLERS", None)
    if specs is None:
        raise ConfigError(f"handler module {name!r} has no HANDLERS list of HandlerSpec")
    return _as_specs(specs, f"module {name}")


def _ep_specs(ep: EntryPoint) -> list[HandlerSpec]:
    where = f"entry point {ep.name} = {ep.value} (group {ep.group})"
    try:
        obj = ep.load()
    except Exception as exc:  # a third-party package: any import failure is its bug
        raise ConfigError(f"{where} failed to load ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, ModuleType):
        return _module_specs(obj, obj.__name__)
    return _as_specs(obj, where)


def _as_specs(obj: object, where: str) -> list[HandlerSpec]:
    items = [obj] if isinstance(obj, HandlerSpec | Handlers) else obj
    if not isinstance(items, list | tuple) or not all(
        isinstance(s, HandlerSpec | Handlers) for s in items
    ):
        raise ConfigError(
            f"{where} must provide a HandlerSpec, a Handlers router, a list of them, or a module"
        )
    return [s.spec if isinstance(s, Handlers) else s for s in items]
