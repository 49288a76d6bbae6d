"""Helpers shared by the care-concept builders (care, referral, directory): references, periods,
codeable concepts, and the final validation into a fhir.resources object of the chosen version."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, TypeVar

from fhir.resources.R4B.resource import Resource

from carecoord.caremodel.identifiers import business_identifier_json
from carecoord.caremodel.terminology import Code
from carecoord.core import json_codec
from carecoord.fhir import lazy
from carecoord.fhir.lazy import (
    LazyResource,
    LeanBuildMismatch,
    checking_builds,
    copy_json,
    is_lean,
)
from carecoord.fhir.models import FhirVersion, model_class, to_json

R = TypeVar("R", bound=Resource)

_UTC_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$")
_FRACTION = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d+)(Z|[+-]\d\d:\d\d)$")
_REFERENCE = re.compile(r"^(?:[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}|urn:uuid:[0-9a-fA-F-]{36})$")


def ref(reference: str, *, expect: str | Iterable[str] | None = None) -> dict[str, str]:
    """{"reference": ...} for a "Type/id" or "urn:uuid:..." string; checks the type if asked."""
    if not isinstance(reference, str) or not _REFERENCE.match(reference):
        raise ValueError(f"not a 'Type/id' or urn:uuid reference: {reference!r}")
    if expect is not None and not reference.startswith("urn:uuid:"):
        allowed = {expect} if isinstance(expect, str) else set(expect)
        rtype = reference.split("/", 1)[0]
        if rtype not in allowed:
            raise ValueError(
                f"reference {reference!r} must point at {' or '.join(sorted(allowed))}"
            )
    return {"reference": reference}


def instant(value: date | datetime) -> str:
    """FHIR date or dateTime text; a naive datetime is rejected (FHIR needs a timezone)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes must be timezone-aware")
        text = value.isoformat()
        # as fhir.resources writes it (UTC as "Z"): the lean JSON is what validation would send
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return value.isoformat()


def period(start: date | datetime | None, end: date | datetime | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    if start is not None:
        out["start"] = instant(start)
    if end is not None:
        out["end"] = instant(end)
    if start is not None and end is not None and _as_date(end) < _as_date(start):
        raise ValueError("period end is before its start")
    return out


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def concept(*codes: Code, text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if codes:
        out["coding"] = [c.json() for c in codes]
    if text:
        out["text"] = text
    return out


def codeable_reference(reference: str, version: FhirVersion) -> dict[str, Any]:
    """An R4 Reference, or the R5 CodeableReference wrapping it."""
    return ref(reference) if version == "R4" else {"reference": ref(reference)}


def identifiers(kind: str, *parts: str) -> list[dict[str, str]]:
    return [business_identifier_json(kind, *parts)]


def finish(cls: type[R], data: dict[str, Any], version: FhirVersion) -> R:
    """Validate `data` into the fhir.resources class of its type in `version`.

    The annotation names the R4 (R4B) class; with version="R5" the object is the R5 class of the
    same resource type (same attribute names for what these builders set).

    Inside `fhir.lazy.lean()` (the handlers' hot path) it is a LazyResource over the JSON:
    validated only if something reads it, and its JSON goes into the transaction as built
    (tests/unit/caremodel/test_lean_builders.py checks that JSON against the validated model's).
    """
    model = model_class(data["resourceType"], version)
    if is_lean():
        lean_json = _drop_empty(data)
        if checking_builds():
            _check_lean(model, lean_json)
        return LazyResource(model, lean_json, model.model_validate)  # type: ignore[return-value]
    resource = model.model_validate(_drop_empty(data))
    return resource  # type: ignore[return-value]


def _check_lean(model: type[Resource], lean_json: dict[str, Any]) -> None:
    validated = to_json(model.model_validate(copy_json(lean_json)))
    if _same_instants(validated) != _same_instants(lean_json):
        found = f"{lean_json.get('resourceType')}: lean {lean_json!r} != validated {validated!r}"
        lazy.mismatches.append(found)
        raise LeanBuildMismatch(found)


def _same_instants(value: Any) -> Any:
    """`value` with the fractional seconds of every dateTime/instant written without trailing
    zeros: a read resource's elements go back as the server wrote them ("…43.067Z", see
    fhir/lazy.py `sendable_json`), where validation writes microseconds ("…43.067000Z"); the same
    instant, so not a builder's mistake."""
    if isinstance(value, dict):
        return {k: _same_instants(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same_instants(v) for v in value]
    if isinstance(value, str) and (match := _FRACTION.match(value)):
        head, fraction, zone = match.groups()
        fraction = fraction.rstrip("0")
        return f"{head}.{fraction}{zone}" if fraction else head + zone
    return value


# What `_drop_empty` changes, as it shows in compact JSON: null, "", [], {} and a "+00:00" zone.
# (Also matched inside strings, e.g. "null" as text: then the walk runs, and changes nothing.)
_NEEDS_WALK = re.compile(rb'null|""|\[\]|\{\}|\+00:00"')


def _drop_empty(value: Any) -> Any:
    """Drop None/empty elements (FHIR forbids empty ones), innermost first; a UTC dateTime
    written "+00:00" (datetime.isoformat) becomes "Z", as validation would write it.

    The builders leave most empties at the top (`"careTeam": []`): those go first, and what is
    left is walked only if its JSON still shows one (a search at C speed). The walk in Python
    was a fifth of an enrolment's CPU (issue 27)."""
    if isinstance(value, dict):
        top = {k: v for k, v in value.items() if not (v is None or v == "" or v == [] or v == {})}
        try:
            clean = _NEEDS_WALK.search(json_codec.dumps(top)) is None
        except TypeError:  # not plain JSON (a date object): the walk keeps it as it is
            clean = False
        return top if clean else _walk(top)
    return _walk(value)


def _walk(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            kept = _kept(item)
            if kept is not _DROP:
                out[key] = kept
        return out
    if isinstance(value, list):
        return [kept for item in value if (kept := _kept(item)) is not _DROP]
    return _kept(value) if value is not None and value != "" else value


_DROP = object()


def _kept(item: Any) -> Any:
    """`item` cleaned, or _DROP where FHIR forbids it (None, "", an empty list or object).
    One pass, no throw-away containers: it runs over every resource a handler builds."""
    if isinstance(item, dict | list):
        cleaned = _walk(item)
        return cleaned if cleaned else _DROP
    if item is None or item == "":
        return _DROP
    if isinstance(item, str) and item.endswith("+00:00") and _UTC_DATETIME.match(item):
        return item[:-6] + "Z"  # as fhir.resources writes a UTC dateTime / instant
    return item


def ref_id(reference: str) -> str:
    """The id part of "Type/id" (or the whole urn:uuid), for business keys."""
    return reference.rsplit("/", 1)[-1] if not reference.startswith("urn:") else reference


def month_period(day: date) -> tuple[date, date]:
    """First and last day of the calendar month containing `day`."""
    start = day.replace(day=1)
    nxt = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return start, date.fromordinal(nxt.toordinal() - 1)
