"""The one shape of a community service in the directory, written by the `fhir.directory`
builders and the HSDS importer alike and read by `handlers.directory_ranking`:

- `category`: one CodeableConcept per Gravity SDOH domain, with the US Core category `sdoh`
  (the only code of SDOHCCValueSetServiceCategory) and the SDOHCC domain code (SDOHCC
  ValueSet SDOH Category), as SDOHCCHealthcareServiceForReferralManagement slices
  category.coding (HL7/fhir-sdoh-clinicalcare input/fsh/profiles/
  SDOHCCHealthcareServiceForReferralManagement.fsh);
- `coverageArea`: contained Locations (mode kind, physicalType area): one per postal code served
  (address.postalCode), and one per service area that names no postal code (name/description
  only: the ranking treats the coverage as not known rather than as the site's own ZIP code);
- `type`: other service types (taxonomy terms), never the SDOH domain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from carecoord.caremodel import terminology as t

LOCATION_PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"


def service_categories(domains: Iterable[str]) -> list[dict[str, Any]]:
    """HealthcareService.category for Gravity domain codes (ValueError for an unknown one)."""
    out = []
    for code in dict.fromkeys(domains):
        try:
            domain = t.SDOH_DOMAINS[code]
        except KeyError:
            raise ValueError(f"unknown SDOH domain {code!r}") from None
        out.append({"coding": [t.SERVICE_CATEGORY_SDOH.json(), domain.category.json()]})
    return out


def coverage_area(
    postal_codes: Sequence[str],
    unspecified: Sequence[tuple[str | None, str | None]] = (),
    version: str = "R4",
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(contained Locations, coverageArea references) for the postal codes served plus areas
    (name, description) given without postal codes. (R5 renamed Location.physicalType form.)"""
    kind_key = "physicalType" if version == "R4" else "form"
    area_type = {"coding": [{"system": LOCATION_PHYSICAL_TYPE, "code": "area", "display": "Area"}]}
    contained: list[dict[str, Any]] = []
    for pc in postal_codes:
        contained.append(
            {
                "resourceType": "Location",
                "id": f"area-{len(contained)}",
                "mode": "kind",
                kind_key: area_type,
                "address": {"postalCode": pc},
            }
        )
    for name, description in unspecified:
        loc: dict[str, Any] = {
            "resourceType": "Location",
            "id": f"area-{len(contained)}",
            "mode": "kind",
            kind_key: area_type,
        }
        if name:
            loc["name"] = name[:500]
        if description:
            loc["description"] = description[:2000]
        contained.append(loc)
    return contained, [{"reference": f"#{c['id']}"} for c in contained]
