"""Reading elements of a resource that may be a lean one (fhir/lazy.py) without validating them.

Readers every event asks (a team's members, a plan's period, a request's basedOn) go through
`element` and `field`: a lean resource's element comes as its JSON, any other as the validated
model's attribute, and `field` reads either. Validating an element costs 8-70 us (a CareTeam's
participants the most), several per event (issue 27).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from carecoord.fhir.lazy import NOT_JSON, copy_json, element_json


def element(resource: Any, name: str) -> Any:
    """Element `name` (its Python field name: `for_fhir`, not `for`) of a resource: its JSON
    where the resource is a lean one still holding it, else the attribute (validated, which
    raises FhirResponseInvalid for a server's invalid resource)."""
    value = element_json(resource, name)
    return getattr(resource, name, None) if value is NOT_JSON else value


def field(value: Any, key: str) -> Any:
    """Field `key` of an element read as JSON (a dict) or as a model. The keys read through here
    are spelled the same in both (reference, coding, system, code, start, end, member, role)."""
    if isinstance(value, dict):
        return value.get(key)
    return getattr(value, key, None) if value is not None else None


def items(value: Any) -> list[Any]:
    """A 0..* element as a list (None, and JSON that is not a list: no items)."""
    return value if isinstance(value, list) else []


def as_json(value: Any) -> Any:
    """An element read with `element` as JSON of its own (a copy, to put into another resource)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True, by_alias=True)
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return copy_json(value)
