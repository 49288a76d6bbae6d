"""Deterministic ids for emitted events: a replayed trigger emits the same id, so downstream
consumers can deduplicate."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("9d3c8a52-7f1e-4b8a-9c0e-2a6b5e4d1f37")


def derived_id(*parts: str) -> str:
    """A UUID derived from its parts, e.g. derived_id(trigger_event_id, "referral.created")."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))
