"""Transactional outbox: an event's emits are stored with its FHIR effects, atomically.

The runtime applies an event's FHIR writes, then produces its emits, then commits the offset. A
crash between the first two steps redelivers the event, but its resources already exist, so the
handlers (idempotent: nothing new to create) would decide to emit nothing and the emits were lost.
So the processor adds one `Basic` record (identifier = the event id, the emits as JSON) to the
same transaction; on redelivery it finds the record and re-produces exactly those emits (same
ids: downstream deduplicates); the redelivery's own writes are idempotent (conditional creates
match what exists).

The lookup costs a FHIR round trip, so it is made only where a replay is possible
(`emits_after_apply`): the transaction's own answers say whether the event was applied before.
- The event emits now: its record is in the transaction, created conditionally. 201 = first
  application; 200 = the record already existed, and the stored emits come back in the same
  response (a lookup only if the server sent no representation).
- It emits nothing now but writes: if every conditional create answered 201, none of the
  resources existed, so the event was never applied (its first transaction would have created
  them, atomically with its record). A 200, no create at all (updates only) or a result that
  cannot be read -> look the record up. Handlers keep this sound by re-creating, whenever a
  redelivery writes anything, at least one resource keyed by the event (or the same business key)
  that the first application created — every built-in handler does (e.g. the attempt's
  Communication, the time entry, the need's Condition).
- It writes nothing: look the record up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from fhir.resources.R4B.basic import Basic

from carecoord.caremodel import terminology as t
from carecoord.caremodel._build import finish
from carecoord.caremodel.identifiers import identifier_system, identifier_value
from carecoord.core.effects import Create, Effects, Emit, urn_for
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import FhirReader

KIND = "event-outbox"


def _key(event: CloudEvent) -> str:
    # CloudEvents ids are unique per source; the default source keeps the plain id readable.
    return event.id if event.source == "urn:carecoord" else f"{event.source}|{event.id}"


def add_outbox(effects: Effects, event: CloudEvent, at: datetime) -> None:
    """Add the outbox record of `effects.emits` to `effects.writes` (nothing when no emits)."""
    if not effects.emits:
        return
    system, value = identifier_system(KIND), identifier_value(_key(event))
    record = finish(
        Basic,
        {
            "resourceType": "Basic",
            "identifier": [{"use": "official", "system": system, "value": value}],
            "code": t.OUTBOX_RECORD.concept_json(),
            "created": at.date().isoformat(),
            **({"subject": {"reference": event.subject}} if event.patient_id else {}),
            "extension": [
                {"url": t.OUTBOX_EMITS_EXTENSION, "valueString": _dump(effects.emits)},
            ],
        },
        "R4",
    )
    effects.create(record, system, value)


def stored_emits(fhir: FhirReader, event: CloudEvent) -> list[Emit] | None:
    """The emits recorded when `event` was first applied, or None if it never was."""
    system, value = identifier_system(KIND), identifier_value(_key(event))
    for found in fhir.search("Basic", {"identifier": f"{system}|{value}"}):
        emits = _emits_of(found, system, value)
        if emits is not None:
            return emits
    return None


def _emits_of(found: object, system: str, value: str) -> list[Emit] | None:
    # Guard against servers that ignore an unsupported search parameter.
    idents = getattr(found, "identifier", None) or []
    if not any(i.system == system and i.value == value for i in idents):
        return None
    for ext in getattr(found, "extension", None) or []:
        if ext.url == t.OUTBOX_EMITS_EXTENSION and ext.valueString:
            return _load(ext.valueString)
    return None


def merge_emits(stored: Sequence[Emit] | None, current: Sequence[Emit]) -> list[Emit]:
    """The stored emits, then the current ones not among them (by id): a redelivery announces
    what its first application decided, and loses nothing its own run decided."""
    out = list(stored or [])
    ids = {e.id for e in out}
    return out + [e for e in current if e.id not in ids]


def emits_after_apply(
    fhir: FhirReader, event: CloudEvent, effects: Effects, result: object
) -> list[Emit]:
    """What to produce after `effects` (with its outbox record, if any) were applied as one
    transaction answering `result`; looks the record up only where a replay is possible (see the
    module docstring)."""
    system, value = identifier_system(KIND), identifier_value(_key(event))
    record_url = urn_for(system, value)
    entries = getattr(result, "entries", None)
    if not isinstance(entries, tuple | list) or len(entries) != len(effects.writes):
        return merge_emits(stored_emits(fhir, event), effects.emits)  # cannot tell: look
    creates = [
        (w, e) for w, e in zip(effects.writes, entries, strict=True) if isinstance(w, Create)
    ]
    for write, entry in creates:
        if write.full_url != record_url:
            continue
        if getattr(entry, "status", None) == 201:
            return list(effects.emits)  # first application
        stored = _emits_of(getattr(entry, "resource", None), system, value)
        if stored is None:
            stored = stored_emits(fhir, event)
        return merge_emits(stored, effects.emits)
    if creates and all(getattr(e, "status", None) == 201 for _, e in creates):
        return list(effects.emits)  # nothing existed: never applied before
    return merge_emits(stored_emits(fhir, event), effects.emits)


def _dump(emits: Sequence[Emit]) -> str:
    return json.dumps(
        [{"type": e.type, "subject": e.subject, "data": dict(e.data), "id": e.id} for e in emits],
        separators=(",", ":"),
        default=str,
    )


def _load(text: str) -> list[Emit]:
    return [Emit(d["type"], d["subject"], d["data"], d["id"]) for d in json.loads(text)]
