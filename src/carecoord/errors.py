"""The root of carecoord's error hierarchy.

Every error carries context (which resource, which event, which offset) as attributes and in its
message, and never PHI: ids only.

    CarecoordError                   transient / rerun / unavailable decide what the runtime does
    ├── ConfigError                  a setting is wrong: fails at start-up; permanent at run time
    │   └── PortUnavailable (local)  a port `carecoord local` was told to use is taken
    ├── StartupError                 the service cannot start (a port in use, a broker unreachable)
    ├── InvalidTransition            a workflow state machine refused a transition
    ├── TransientError (events/runtime)  a processor's "worth retrying": retried in the budget
    ├── EventError                   the event cannot be processed (permanent)
    │   ├── MalformedEvent           not JSON / not a CloudEvent / unknown type / bad data
    │   │   ├── MalformedNotification (fhir/notification_bundles)  not a FHIR notification
    │   │   └── MalformedAssessment  a response its instrument cannot score (names the item)
    │   └── HandlerError             a handler cannot act on a valid event
    ├── FhirError (fhir/errors.py)   dependency "fhir"; 5xx, 429 and transport errors: unavailable
    │   ├── FhirNotFound             404
    │   ├── FhirGone                 410
    │   ├── FhirConflict             409/412: rerun (the handlers read again)
    │   │   ├── FhirPreconditionFailed   412: If-Match stale, or a conditional matched several
    │   │   └── ConflictRetriesExhausted (handlers/processing)  still conflicting after reruns
    │   ├── FhirInvalid              400/422 with the OperationOutcome's issues
    │   ├── FhirUnauthorized         401
    │   ├── FhirForbidden            403
    │   ├── FhirServerError          5xx: unavailable
    │   │   └── FhirRateLimited      429, with its Retry-After
    │   ├── FhirTransportError       connection refused, reset, timed out: unavailable
    │   └── FhirResponseInvalid      a 2xx whose body is not the FHIR the request asked for
    ├── BrokerError (events/broker)  dependency "kafka"; unavailable unless MessageTooLarge
    │   └── MessageTooLarge          a record over the broker's size limit (permanent)
    ├── HsdsFormError (directory/hsds_forms) a payload in none of the HSDS forms carecoord reads
    ├── HsdsRecordError (directory/hsds)     one HSDS record cannot be mapped (names the field)
    ├── HsdsTabularError (directory/tabular) a folder that is not an HSDS tabular export
    └── HsdsApiError (directory/sync)        an HSDS API cannot be read (path and status)

The runtime's contract (events/runtime.py `classify`): an error that is `unavailable` pauses
consumption until its dependency answers again and never dead-letters the event; `transient` or
`rerun` ones are retried within the retry budget; everything else of carecoord's is permanent
and goes to the dead-letter topic.
"""

from __future__ import annotations

from typing import Any


class CarecoordError(Exception):
    """Base class of every error carecoord raises on purpose."""

    transient: bool = False
    """The same operation may succeed if tried again later (a timeout, a 503)."""
    rerun: bool = False
    """Re-running the event's handlers may succeed where repeating the request would not."""
    dependency: str | None = None
    """The dependency whose failure this reports ("fhir", "kafka"), if any."""

    @property
    def unavailable(self) -> bool:
        """The dependency is unreachable or failing: an outage, unless a probe finds it well."""
        return False

    @property
    def declared_unavailable(self) -> bool:
        """The dependency itself said it is unavailable (429, 503): an outage, no probe needed."""
        return False

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


class MalformedAssessment(MalformedEvent):
    """A QuestionnaireResponse of a known instrument that cannot be scored as it defines: an
    answer outside the item's answer list, a second answer to a single-answer item. `item` is
    the item's code (a LOINC code: never an answer, never free text)."""

    def __init__(self, message: str, *, item: str, **context: Any) -> None:
        super().__init__(message, item=item, **context)
        self.item = item


class HandlerError(EventError):
    """A handler could not produce effects for an otherwise valid event."""


def describe_validation(exc: Any) -> str:
    """Summarise a pydantic ValidationError by location and message, never by input value (PHI)."""
    return "; ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors())


class StartupError(CarecoordError):
    """The service cannot start (a port in use, a broker unreachable); the message says the fix."""
