"""CloudEvents 1.0 structured-mode JSON envelope (the v1 wire format)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from carecoord.errors import MalformedEvent, describe_validation

SPEC_VERSION = "1.0"
DEFAULT_SOURCE = "urn:carecoord"


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
        try:  # fast path: pydantic-core parses and validates in one pass
            return cls.model_validate_json(raw)
        except ValueError:
            pass  # diagnose below, precisely and without echoing values
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


def _pos(exc: Exception) -> int | str:
    return getattr(exc, "pos", getattr(exc, "start", "?"))


def _safe_id(v: object) -> str | None:
    return v[:128] if isinstance(v, str) else None
