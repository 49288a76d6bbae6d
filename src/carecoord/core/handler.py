"""Handler declaration and discovery.

A handler module exposes `HANDLERS: list[HandlerSpec]`. Built-in modules are listed in
`BUILTIN_MODULES`; third-party packages declare specs through the entry-point group
`carecoord.handlers` (an entry point may name a HandlerSpec, a list of them, or a module with
`HANDLERS`). Each handler can be enabled, disabled and configured by name; a spec with a
`config_model` has its merged configuration validated when the handlers load (at start-up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Handler

ENTRY_POINT_GROUP = "carecoord.handlers"

BUILTIN_MODULES: tuple[str, ...] = (
    "carecoord.handlers.enrolment",
    "carecoord.handlers.outreach",
    "carecoord.handlers.care_tasks",
    "carecoord.handlers.referrals",
    "carecoord.handlers.clinical",
    "carecoord.handlers.billing",
    "carecoord.handlers.reassignment",
)


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
