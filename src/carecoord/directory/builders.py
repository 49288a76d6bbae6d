"""Builders for the community resource directory: Organization (the community-based
organisation, CBO), Location (where it serves) and HealthcareService (what it offers: SDOH
domains, languages, service area by postal code), in the one directory shape of
carecoord.directory.shape that the HSDS importer writes too and the ranking reads.

Identifiers come from the directory source: kind organization/location/healthcare-service, value
`source : source_id` (e.g. "hsds-211:org-42"), so re-importing the same directory updates nothing
and duplicates nothing. All arguments are keyword-only; `version` selects R4 (default) or R5 (R5
moved telecom/address into `contact`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.organization import Organization

from carecoord.caremodel import terminology as t
from carecoord.caremodel._build import concept, finish, identifiers, ref
from carecoord.directory.shape import coverage_area, service_categories
from carecoord.fhir.models import DEFAULT_VERSION, FhirVersion

LANGUAGE_SYSTEM = "urn:ietf:bcp:47"
# Formerly the system of the postal codes a HealthcareService served (in `characteristic`); the
# builders now write contained coverageArea Locations (carecoord.directory.shape). Kept for
# readers of directories built before.
SERVICE_AREA_SYSTEM = f"{t.CODESYSTEM_BASE}service-area-postal-code"


def _telecom(phone: str | None, email: str | None, url: str | None) -> list[dict[str, str]]:
    out = []
    for system, value in (("phone", phone), ("email", email), ("url", url)):
        if value:
            out.append({"system": system, "value": value, "use": "work"})
    return out


def _address(
    lines: Sequence[str], city: str | None, state: str | None, postal_code: str | None
) -> dict[str, Any]:
    return {
        "use": "work",
        "line": list(lines),
        "city": city,
        "state": state,
        "postalCode": postal_code,
        "country": "US" if state else None,
    }


def organization(
    *,
    source: str,
    source_id: str,
    name: str,
    phone: str | None = None,
    email: str | None = None,
    url: str | None = None,
    address_lines: Sequence[str] = (),
    city: str | None = None,
    state: str | None = None,
    postal_code: str | None = None,
    active: bool = True,
    version: FhirVersion = DEFAULT_VERSION,
) -> Organization:
    """A community-based organisation (type "cg" community group). Identifier: organization |
    source : source_id."""
    telecom = _telecom(phone, email, url)
    address = _address(address_lines, city, state, postal_code)
    data: dict[str, Any] = {
        "resourceType": "Organization",
        "identifier": identifiers("organization", source, source_id),
        "active": active,
        "type": [concept(t.Code(t.ORGANIZATION_TYPE_SYSTEM, "cg", "Community Group"))],
        "name": name,
    }
    if version == "R4":
        data["telecom"] = telecom
        data["address"] = [address]
    else:
        data["contact"] = [{"telecom": telecom, "address": address}]
    return finish(Organization, data, version)


def location(
    *,
    source: str,
    source_id: str,
    name: str,
    organization: str | None = None,
    address_lines: Sequence[str] = (),
    city: str | None = None,
    state: str | None = None,
    postal_code: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    phone: str | None = None,
    version: FhirVersion = DEFAULT_VERSION,
) -> Location:
    """Where a CBO serves (status active, mode instance). Identifier: location | source :
    source_id."""
    data: dict[str, Any] = {
        "resourceType": "Location",
        "identifier": identifiers("location", source, source_id),
        "status": "active",
        "mode": "instance",
        "name": name,
        "address": _address(address_lines, city, state, postal_code),
        "managingOrganization": ref(organization, expect="Organization") if organization else None,
    }
    if latitude is not None and longitude is not None:
        data["position"] = {"latitude": latitude, "longitude": longitude}
    telecom = _telecom(phone, None, None)
    if version == "R4":
        data["telecom"] = telecom
    else:
        data["contact"] = [{"telecom": telecom}] if telecom else []
    return finish(Location, data, version)


def healthcare_service(
    *,
    source: str,
    source_id: str,
    name: str,
    organization: str,
    domains: Sequence[str],
    locations: Sequence[str] = (),
    service_area_postal_codes: Sequence[str] = (),
    languages: Sequence[str] = (),
    phone: str | None = None,
    url: str | None = None,
    description: str | None = None,
    active: bool = True,
    version: FhirVersion = DEFAULT_VERSION,
) -> HealthcareService:
    """A service a CBO offers, in the directory's one shape (carecoord.directory.shape,
    the same as the HSDS importer writes and the referral ranking reads): `domains` (Gravity SDOH
    domain codes, e.g. "food-insecurity") become `category` (US Core sdoh + the SDOHCC domain),
    the postal codes served contained `coverageArea` Locations. Languages are BCP-47 codes
    (communication). Identifier: healthcare-service | source : source_id."""
    categories = service_categories(domains)
    contained, coverage = coverage_area(list(service_area_postal_codes), version=version)
    telecom = _telecom(phone, None, url)
    data: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "identifier": identifiers("healthcare-service", source, source_id),
        "contained": contained,
        "active": active,
        "providedBy": ref(organization, expect="Organization"),
        "category": categories,
        "name": name,
        "comment": description,
        "location": [ref(loc, expect="Location") for loc in locations],
        "coverageArea": coverage,
        "communication": [concept(t.Code(LANGUAGE_SYSTEM, lang), text=lang) for lang in languages],
    }
    if version == "R4":
        data["telecom"] = telecom
    else:
        data["contact"] = [{"telecom": telecom}] if telecom else []
    return finish(HealthcareService, data, version)
