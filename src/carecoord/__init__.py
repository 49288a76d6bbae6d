"""carecoord: care coordination on FHIR and Kafka.

The public API is curated here; everything else is importable but may change between minor
versions. Builders live in `carecoord.fhir.care`, `.referral` and `.directory`; codes in
`carecoord.fhir.terminology`.
"""

from __future__ import annotations

from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Create, Effects, Emit, Update
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.core.handler import FhirReader, HandlerContext, HandlerSpec
from carecoord.errors import (
    CarecoordError,
    ConfigError,
    EventError,
    HandlerError,
    InvalidTransition,
    MalformedEvent,
)
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import EventProcessor, EventRuntime, RuntimeOptions, TransientError
from carecoord.fhir.async_client import AsyncFhirClient
from carecoord.fhir.client import FhirClient
from carecoord.fhir.errors import (
    FhirConflict,
    FhirError,
    FhirForbidden,
    FhirGone,
    FhirInvalid,
    FhirNotFound,
    FhirPreconditionFailed,
    FhirResponseInvalid,
    FhirServerError,
    FhirTransportError,
    FhirUnauthorized,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncFhirClient",
    "CarecoordError",
    "CloudEvent",
    "ConfigError",
    "Create",
    "Effects",
    "Emit",
    "EventError",
    "EventProcessor",
    "EventRuntime",
    "FhirClient",
    "FhirConflict",
    "FhirError",
    "FhirForbidden",
    "FhirGone",
    "FhirInvalid",
    "FhirNotFound",
    "FhirPreconditionFailed",
    "FhirReader",
    "FhirResponseInvalid",
    "FhirServerError",
    "FhirTransportError",
    "FhirUnauthorized",
    "HandlerConfig",
    "HandlerContext",
    "HandlerError",
    "HandlerSpec",
    "InMemoryBroker",
    "InvalidTransition",
    "MalformedEvent",
    "RuntimeOptions",
    "TransientError",
    "Update",
    "__version__",
    "new_event",
]
