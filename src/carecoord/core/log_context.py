"""Fields every log line carries while an event is handled (event id, type, handler, patient id,
topic/partition/offset, trace and span ids), so call sites need no `extra=` for them.

The event runtime and the handler processor `bind` them around their work; the service's log
handler (`carecoord.service.logging`) adds `fields()` to each record. A context variable keeps
them per thread (each worker handles one event at a time) and per asyncio task. Values are ids
and names only, never PHI: `patient_id` is the Kafka key only when it is a FHIR id.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

from carecoord.core import tracing

# The bound fields; a dict never changed once set (`bind` sets a new one), so reads need no copy.
_FIELDS: ContextVar[dict[str, Any]] = ContextVar("carecoord_log", default={})  # noqa: B039

# FHIR R4 `id` datatype: [A-Za-z0-9\-\.]{1,64} (https://hl7.org/fhir/R4/datatypes.html#id).
_FHIR_ID = re.compile(rb"[A-Za-z0-9\-.]{1,64}")


class bind:  # lower case: used like a function, `with bind(event_id=...):`
    """Add `fields` (None values left out) to every log line written inside the block.

    A class rather than a generator context manager: it runs twice per event on the hot path."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def __enter__(self) -> None:
        bound = {k: v for k, v in self._fields.items() if v is not None}
        outer = _FIELDS.get()
        self._token = _FIELDS.set({**outer, **bound} if outer else bound)

    def __exit__(self, *exc: object) -> None:
        _FIELDS.reset(self._token)


def fields() -> dict[str, Any]:
    """The bound fields plus the current trace's ids (see `tracing.log_ids`)."""
    return {**_FIELDS.get(), **tracing.log_ids()}


def patient_key(key: bytes | None) -> str | None:
    """The Kafka key as a log field when it is a FHIR id (the catalog keys events by patient id);
    anything else may be free text and is left out."""
    if key is not None and _FHIR_ID.fullmatch(key):
        return key.decode("ascii")
    return None
