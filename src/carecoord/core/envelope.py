"""CloudEvents 1.0 structured-mode JSON envelope (the v1 wire format)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from carecoord.core.tracing import MAX_TRACESTATE, valid_traceparent
from carecoord.errors import MalformedEvent, describe_validation

SPEC_VERSION = "1.0"
DEFAULT_SOURCE = "urn:carecoord"

# Deepest JSON nesting (objects and arrays, the envelope included) an event may have. CPython's
# json module recurses per level, so a message of 100,000 "[" would raise RecursionError; no
# catalog event needs more than a handful of levels. Deeper input is a MalformedEvent.
MAX_JSON_DEPTH = 64

# A JSON string, escapes included: brackets inside strings do not nest.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class CloudEvent(BaseModel):
    """A CloudEvent. `subject` is "Patient/<id>"; the Kafka key is that patient id."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: str = SPEC_VERSION
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: datetime | None = None
    subject: str | None = None
    datacontenttype: str | None = "application/json"
    dataschema: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    # The CloudEvents distributed-tracing extension (optional: events without it are as before):
    # W3C Trace Context values. An invalid traceparent is dropped, not refused, and tracestate
    # with it (W3C Trace Context: a traceparent that cannot be parsed restarts the trace).
    traceparent: str | None = None
    tracestate: str | None = None

    @field_validator("traceparent", mode="before")
    @classmethod
    def _traceparent(cls, v: object) -> str | None:
        return v if isinstance(v, str) and valid_traceparent(v) else None

    @field_validator("tracestate", mode="before")
    @classmethod
    def _tracestate(cls, v: object, info: ValidationInfo) -> str | None:
        if info.data.get("traceparent") is None:
            return None
        return v if isinstance(v, str) and len(v) <= MAX_TRACESTATE else None

    @field_validator("specversion")
    @classmethod
    def _v1(cls, v: str) -> str:
        if v != SPEC_VERSION:
            raise ValueError(f"specversion must be {SPEC_VERSION!r}")
        return v

    @property
    def patient_id(self) -> str | None:
        if self.subject and self.subject.startswith("Patient/"):
            return self.subject.removeprefix("Patient/")
        return None

    @property
    def key(self) -> bytes | None:
        pid = self.patient_id
        return pid.encode() if pid else None

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json_bytes(cls, raw: bytes | None) -> CloudEvent:
        """Parse wire bytes; raise `MalformedEvent` naming what is wrong (never echoing PHI)."""
        if raw is None:
            raise MalformedEvent("empty message (tombstone) is not a CloudEvent")
        # The quick count inline (hot path); deep input never reaches a recursive parser.
        if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and nested_too_deep(raw):
            raise MalformedEvent(
                f"not a CloudEvent: JSON nested deeper than {MAX_JSON_DEPTH} levels"
            )
        try:  # fast path: pydantic-core parses and validates in one pass (the validator
            # itself: model_validate_json's wrapper costs a third as much again per event)
            event: CloudEvent = cls.__pydantic_validator__.validate_json(raw)
            return event
        except (ValueError, RecursionError):
            pass  # diagnose below, precisely and without echoing values
        try:
            return cls._diagnose(raw)
        except RecursionError as exc:  # backstop: a stack overflow is never transient
            raise MalformedEvent("not a CloudEvent: JSON nested too deeply to parse") from exc

    @classmethod
    def _diagnose(cls, raw: bytes) -> CloudEvent:
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedEvent(f"not JSON: {type(exc).__name__} at position {_pos(exc)}") from exc
        if not isinstance(obj, dict):
            raise MalformedEvent(f"not a CloudEvent: JSON {type(obj).__name__}, expected object")
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            fields = describe_validation(exc)
            raise MalformedEvent(
                f"not a CloudEvent: {fields}", event_id=_safe_id(obj.get("id"))
            ) from exc


def new_event(
    type: str,
    patient_id: str,
    data: dict[str, Any],
    *,
    id: str | None = None,
    source: str = DEFAULT_SOURCE,
    time: datetime | None = None,
) -> CloudEvent:
    return CloudEvent(
        id=id or str(uuid.uuid4()),
        source=source,
        type=type,
        time=time or datetime.now(UTC),
        subject=f"Patient/{patient_id}",
        data=data,
    )


def nested_too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if the JSON text `raw` nests objects/arrays more than `limit` deep, without parsing it.

    Input with at most `limit` opening brackets cannot nest deeper (two byte counts, which
    `from_json_bytes` does inline). Otherwise strings are cut out and the running depth of the
    remaining brackets is taken, all in C loops. Invalid JSON may be measured wrongly: it is
    rejected either way.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def _pos(exc: Exception) -> int | str:
    return getattr(exc, "pos", getattr(exc, "start", "?"))


def _safe_id(v: object) -> str | None:
    return v[:128] if isinstance(v, str) else None
