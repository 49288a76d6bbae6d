"""The root of carecoord's error hierarchy.

Every error carries context (which resource, which event, which offset) as attributes and in its
message, and never PHI: ids only.
"""

from __future__ import annotations

from typing import Any


class CarecoordError(Exception):
    """Base class of every error carecoord raises on purpose."""

    def __init__(self, message: str, **context: Any) -> None:
        self.context: dict[str, Any] = {k: v for k, v in context.items() if v is not None}
        suffix = ", ".join(f"{k}={v}" for k, v in self.context.items())
        super().__init__(f"{message} ({suffix})" if suffix else message)
        self.message = message


class ConfigError(CarecoordError):
    """A setting is missing or wrong; the message says how to fix it."""


class InvalidTransition(CarecoordError):
    """A FHIR workflow state machine (e.g. Task.status) was asked for a transition it forbids."""


class EventError(CarecoordError):
    """An event cannot be processed. `permanent` errors go to the dead-letter topic."""

    permanent: bool = True


class MalformedEvent(EventError):
    """Not JSON, not a CloudEvent, an unknown type, or data that fails the catalog schema."""


class HandlerError(EventError):
    """A handler could not produce effects for an otherwise valid event."""


def describe_validation(exc: Any) -> str:
    """Summarise a pydantic ValidationError by location and message, never by input value (PHI)."""
    return "; ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors())


class StartupError(CarecoordError):
    """The service cannot start (a port in use, a broker unreachable); the message says the fix."""
