"""carecoord: care coordination on FHIR and Kafka.

The public API is curated here; everything else is importable but may change between minor
versions. The test kit is `carecoord.testing`; the layers are drawn in docs/architecture.md.
Builders live in `carecoord.caremodel.builders`, `.referral` and `.directory`; codes in
`carecoord.caremodel.terminology`; the event catalog's models, inbound and outbound, in
`carecoord.catalog` (`catalog.INBOUND`, `catalog.OUTBOUND`: type -> model).
"""

from __future__ import annotations

from carecoord import (
    _moved,  # noqa: F401  (0.1's module paths still import: docs/moved.md)
    catalog,
)
from carecoord.caremodel.builders import work_task
from carecoord.caremodel.identifiers import add_create
from carecoord.caremodel.instruments import Assessment
from carecoord.caremodel.instruments import score_response as score_questionnaire_response
from carecoord.core.catalog import EventData
from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Create, Effects, Emit, Update
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.core.handler import FhirReader, HandlerContext, HandlerSpec
from carecoord.core.router import Delivery, Handlers
from carecoord.errors import (
    CarecoordError,
    ConfigError,
    EventError,
    HandlerError,
    InvalidTransition,
    MalformedAssessment,
    MalformedEvent,
)
from carecoord.events.availability import Availability
from carecoord.events.broker import KafkaConnection
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import EventProcessor, EventRuntime, RuntimeOptions, TransientError
from carecoord.fhir import errors as _fhir_errors
from carecoord.fhir.async_client import AsyncFhirClient
from carecoord.fhir.client import FhirClient
from carecoord.fhir.errors import *  # noqa: F403  (the error classes, `_fhir_errors.__all__`)
from carecoord.handlers.processing import HandlerProcessor

__version__ = "0.2.0"

__all__ = [
    "Assessment",
    "AsyncFhirClient",
    "Availability",
    "CarecoordError",
    "CloudEvent",
    "ConfigError",
    "Create",
    "Delivery",
    "Effects",
    "Emit",
    "EventData",
    "EventError",
    "EventProcessor",
    "EventRuntime",
    "FhirClient",
    "FhirReader",
    "HandlerConfig",
    "HandlerContext",
    "HandlerError",
    "HandlerProcessor",
    "HandlerSpec",
    "Handlers",
    "InMemoryBroker",
    "InvalidTransition",
    "KafkaConnection",
    "MalformedAssessment",
    "MalformedEvent",
    "RuntimeOptions",
    "TransientError",
    "Update",
    "__version__",
    "add_create",
    "catalog",
    "new_event",
    "score_questionnaire_response",
    "work_task",
]
__all__ += _fhir_errors.__all__
