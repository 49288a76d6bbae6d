"""FHIR model classes per version (fhir.resources): R4 (4.0.1, via the R4B package) or R5."""

from __future__ import annotations

from typing import Any, Literal, TypeVar, cast

import fhir.resources as r5
import fhir.resources.R4B as r4b
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from carecoord.errors import describe_validation
from carecoord.fhir.errors import FhirResponseInvalid
from carecoord.fhir.lazy import LazyResource, checking_builds, copy_json, is_lean

R = TypeVar("R", bound=Resource)
FhirVersion = Literal["R4", "R5"]
DEFAULT_VERSION: FhirVersion = "R4"


def model_class(resource_type: str, version: FhirVersion = DEFAULT_VERSION) -> type[Resource]:
    """The fhir.resources class for `resource_type` (e.g. "Task") in `version`."""
    module = r4b if version == "R4" else r5
    try:
        return cast(type[Resource], module.get_fhir_model_class(resource_type))
    except (KeyError, ValueError, AttributeError) as exc:
        raise FhirResponseInvalid(f"unknown FHIR resource type {resource_type!r}") from exc


def parse_resource(data: Any, version: FhirVersion = DEFAULT_VERSION) -> Resource:
    """Validate JSON (a dict) into a fhir.resources object, or raise FhirResponseInvalid naming the
    resource (type/id) and the failing elements (never their values).

    Inside `fhir.lazy.lean()` the resource is a LazyResource: validated (and the error raised)
    only when a handler reads more than its type and id."""
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise FhirResponseInvalid("not a FHIR resource: no resourceType")
    cls = model_class(data["resourceType"], version)
    if is_lean():
        return LazyResource(cls, data, lambda d: _validate(cls, d))  # type: ignore[return-value]
    return _validate(cls, data)


def _validate(cls: type[Resource], data: dict[str, Any]) -> Resource:
    rtype = data["resourceType"]
    rid = data.get("id") if isinstance(data.get("id"), str) else None
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        where = describe_validation(exc)
        raise FhirResponseInvalid(
            f"invalid {rtype} from server: {where}", resource=f"{rtype}/{rid}" if rid else rtype
        ) from exc


def to_json(resource: Resource) -> dict[str, Any]:
    """JSON-ready dict of a resource (no nulls), as a server expects it."""
    if isinstance(resource, LazyResource):
        raw = resource.sendable_json()  # not validated: a copy of its JSON (fhir/lazy.py)
        if raw is not None:
            return raw
        resource = resource.model()
    data: dict[str, Any] = resource.model_dump(mode="json", exclude_none=True, by_alias=True)
    return data


def wire_json(resource: Resource) -> dict[str, Any]:
    """`to_json` for JSON serialised at once and never edited (a transaction's entries): a lean
    resource's own JSON where none of it was handed out, without the copy `to_json` makes (the
    copy was 2 % of a drain worker's CPU, issue 27)."""
    if isinstance(resource, LazyResource):
        raw = resource.json()
        if raw is not None:
            return raw
    return to_json(resource)


def revised(resource: R, data: dict[str, Any]) -> R:
    """`data` (a handler's edit of `to_json(resource)`) as a resource of the same class. Inside
    `fhir.lazy.lean()` a LazyResource (validated only if read; checked, where the test suite
    checks builds, by validating it now); elsewhere validated at once."""
    return of_class(resource.__class__, data)  # a LazyResource's class is its model's


def of_class(cls: type[R], data: dict[str, Any]) -> R:
    """`data` validated into `cls`; inside `fhir.lazy.lean()` a LazyResource instead (see
    `revised`)."""
    if is_lean():
        if checking_builds():
            cls.model_validate(copy_json(data))
        return LazyResource(cls, data, cls.model_validate)  # type: ignore[return-value]
    return cls.model_validate(data)
