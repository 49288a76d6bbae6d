"""Fields every log line carries while an event is handled (event id, type, handler, patient id,
topic/partition/offset, trace and span ids), so call sites need no `extra=` for them.

The event runtime and the handler processor `bind` them around their work; the service's log
handler (`carecoord.service.logging`) adds `fields()` to each record. A context variable keeps
them per thread (each worker handles one event at a time) and per asyncio task. Values are ids
and names only, never PHI: `patient_id` is the Kafka key only when it is a FHIR id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from carecoord.core import tracing

_EMPTY: MappingProxyType[str, Any] = MappingProxyType({})
_FIELDS: ContextVar[MappingProxyType[str, Any]] = ContextVar("carecoord_log", default=_EMPTY)

# FHIR R4 `id` datatype: [A-Za-z0-9\-\.]{1,64} (https://hl7.org/fhir/R4/datatypes.html#id).
_FHIR_ID = re.compile(rb"[A-Za-z0-9\-.]{1,64}")


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add `fields` (None values left out) to every log line written inside the block."""
    current = _FIELDS.get()
    token = _FIELDS.set(
        MappingProxyType({**current, **{k: v for k, v in fields.items() if v is not None}})
    )
    try:
        yield
    finally:
        _FIELDS.reset(token)


def fields() -> dict[str, Any]:
    """The bound fields plus the current trace's ids (see `tracing.log_ids`)."""
    return {**_FIELDS.get(), **tracing.log_ids()}


def patient_key(key: bytes | None) -> str | None:
    """The Kafka key as a log field when it is a FHIR id (the catalog keys events by patient id);
    anything else may be free text and is left out."""
    if key is not None and _FHIR_ID.fullmatch(key):
        return key.decode("ascii")
    return None
