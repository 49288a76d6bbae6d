"""FHIR model classes per version (fhir.resources): R4 (4.0.1, via the R4B package) or R5."""

from __future__ import annotations

from typing import Any, Literal, cast

import fhir.resources as r5
import fhir.resources.R4B as r4b
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from carecoord.errors import describe_validation
from carecoord.fhir.errors import FhirResponseInvalid

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
    resource (type/id) and the failing elements (never their values)."""
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise FhirResponseInvalid("not a FHIR resource: no resourceType")
    rtype = data["resourceType"]
    rid = data.get("id") if isinstance(data.get("id"), str) else None
    cls = model_class(rtype, version)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        where = describe_validation(exc)
        raise FhirResponseInvalid(
            f"invalid {rtype} from server: {where}", resource=f"{rtype}/{rid}" if rid else rtype
        ) from exc


def to_json(resource: Resource) -> dict[str, Any]:
    """JSON-ready dict of a resource (no nulls), as a server expects it."""
    data: dict[str, Any] = resource.model_dump(mode="json", exclude_none=True, by_alias=True)
    return data
