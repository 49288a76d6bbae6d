"""carecoord: care coordination on FHIR and Kafka.

The public API is curated here; everything else is an implementation detail.
"""

from __future__ import annotations

from carecoord.errors import (
    CarecoordError,
    ConfigError,
    EventError,
    HandlerError,
    InvalidTransition,
    MalformedEvent,
)
from carecoord.events.envelope import CloudEvent, new_event
from carecoord.handlers.base import Create, Effects, Emit, HandlerContext, Update
from carecoord.handlers.registry import HandlerSpec

__version__ = "0.1.0"

__all__ = [
    "CarecoordError",
    "CloudEvent",
    "ConfigError",
    "Create",
    "Effects",
    "Emit",
    "EventError",
    "HandlerContext",
    "HandlerError",
    "HandlerSpec",
    "InvalidTransition",
    "MalformedEvent",
    "Update",
    "__version__",
    "new_event",
]
