"""Transactional outbox: an event's emits are stored with its FHIR effects, atomically.

The runtime applies an event's FHIR writes, then produces its emits, then commits the offset. A
crash between the first two steps redelivers the event, but its resources already exist, so the
handlers (idempotent: nothing new to create) would decide to emit nothing and the emits were lost.
So the processor adds one `Basic` record (identifier = the event id, the emits as JSON) to the
same transaction; on redelivery it finds the record and re-produces exactly those emits (same
ids: downstream deduplicates) without running the handlers again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from fhir.resources.R4B.basic import Basic

from carecoord.core.effects import Effects, Emit
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import FhirReader
from carecoord.fhir import terminology as t
from carecoord.fhir.identifiers import identifier_system, identifier_value

KIND = "event-outbox"


def _key(event: CloudEvent) -> str:
    # CloudEvents ids are unique per source; the default source keeps the plain id readable.
    return event.id if event.source == "urn:carecoord" else f"{event.source}|{event.id}"


def add_outbox(effects: Effects, event: CloudEvent, at: datetime) -> None:
    """Add the outbox record of `effects.emits` to `effects.writes` (nothing when no emits)."""
    if not effects.emits:
        return
    system, value = identifier_system(KIND), identifier_value(_key(event))
    record = Basic.model_validate(
        {
            "resourceType": "Basic",
            "identifier": [{"use": "official", "system": system, "value": value}],
            "code": t.OUTBOX_RECORD.concept_json(),
            "created": at.date().isoformat(),
            **({"subject": {"reference": event.subject}} if event.patient_id else {}),
            "extension": [
                {"url": t.OUTBOX_EMITS_EXTENSION, "valueString": _dump(effects.emits)},
            ],
        }
    )
    effects.create(record, system, value)


def stored_emits(fhir: FhirReader, event: CloudEvent) -> list[Emit] | None:
    """The emits recorded when `event` was first applied, or None if it never was."""
    system, value = identifier_system(KIND), identifier_value(_key(event))
    for found in fhir.search("Basic", {"identifier": f"{system}|{value}"}):
        # Guard against servers that ignore an unsupported search parameter.
        idents = getattr(found, "identifier", None) or []
        if not any(i.system == system and i.value == value for i in idents):
            continue
        for ext in getattr(found, "extension", None) or []:
            if ext.url == t.OUTBOX_EMITS_EXTENSION and ext.valueString:
                return _load(ext.valueString)
    return None


def _dump(emits: Sequence[Emit]) -> str:
    return json.dumps(
        [{"type": e.type, "subject": e.subject, "data": dict(e.data), "id": e.id} for e in emits],
        separators=(",", ":"),
        default=str,
    )


def _load(text: str) -> list[Emit]:
    return [Emit(d["type"], d["subject"], d["data"], d["id"]) for d in json.loads(text)]
