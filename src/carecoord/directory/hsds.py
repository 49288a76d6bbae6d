"""Open Referral HSDS (3.x JSON) -> the community resource directory on FHIR.

`map_export(data)` is pure: it turns an HSDS export into `DirectoryRecord`s (one HealthcareService
with its Organization and Locations) and a `RecordProblem` for each record it cannot map.
`import_directory(client, data)` writes them idempotently: every resource carries the HSDS id as
a business identifier, so a re-import updates what exists and never duplicates.

Mapping (what `carecoord.handlers.referrals.ranking` reads back):
- service.status "active" -> HealthcareService.active (anything else: active false);
- taxonomy terms that map to a Gravity SDOH domain (carecoord.directory.taxonomy: 211/AIRS
  and Open Eligibility defaults, a term that is a domain code, entries from configuration) ->
  category, in the one directory shape (carecoord.directory.shape); the other taxonomy
  terms -> type (system named after its taxonomy) and are reported as unmapped in the import
  summary;
- service_areas -> coverageArea, each a *contained* Location (mode kind, physicalType area) whose
  address.postalCode is one covered postal code. A service area lists postal codes in `extent`
  (extent_type "postcode"/"postal_code"/"text", separated by commas or spaces) or is named by
  one; an area with none (extent_type geojson or topojson, or text naming a place) is kept as an
  area with its name/description and no postal code, so the coverage is "not known" (never the
  site's own ZIP code). Only a service without any service area takes the postal codes of its
  own locations as its coverage;
- languages (ISO 639 code, else name) -> communication (urn:ietf:bcp:47);
- attributes with link_type "eligibility" -> eligibility[].code (carecoord hsds-eligibility
  codes, e.g. "seniors"), eligibility_description -> eligibility.comment, minimum_age/maximum_age
  -> an age-range extension on that eligibility entry;
- organization -> Organization; service_at_locations[].location -> Location (address, position).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from carecoord.caremodel.identifiers import business_identifier_json, identifier_search
from carecoord.caremodel.terminology import (
    CARECOORD_BASE,
    CODESYSTEM_BASE,
    UCUM,
)
from carecoord.core.effects import Create, FhirWrite, Update
from carecoord.directory.hsds_forms import HsdsFormError, services_of
from carecoord.directory.shape import coverage_area, service_categories
from carecoord.directory.taxonomy import domain_of, taxonomy_map, term_label
from carecoord.errors import CarecoordError, describe_validation
from carecoord.fhir.models import revised, to_json

HSDS_SERVICE = "hsds-service"
HSDS_ORGANIZATION = "hsds-organization"
HSDS_LOCATION = "hsds-location"
ELIGIBILITY_SYSTEM = f"{CODESYSTEM_BASE}hsds-eligibility"
TAXONOMY_SYSTEM_BASE = f"{CODESYSTEM_BASE}hsds-taxonomy/"
AGE_RANGE_EXTENSION = f"{CARECOORD_BASE}/StructureDefinition/eligibility-age-range"
LANGUAGE_SYSTEM = "urn:ietf:bcp:47"

_POSTAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-]{1,9}$")
_POSTAL_EXTENT_TYPES = {"postcode", "postal_code", "postalcode", "zip", "text"}
_SLUG = re.compile(r"[^a-z0-9]+")
_LANGUAGE_NAMES = {
    "english": "en",
    "spanish": "es",
    "chinese": "zh",
    "mandarin": "zh",
    "cantonese": "yue",
    "vietnamese": "vi",
    "korean": "ko",
    "russian": "ru",
    "arabic": "ar",
    "french": "fr",
    "haitian creole": "ht",
    "polish": "pl",
    "portuguese": "pt",
    "tagalog": "tl",
    "somali": "so",
}


class HsdsRecordError(CarecoordError):
    """One HSDS record cannot be mapped; the message names the field, never a value."""


@dataclass(frozen=True)
class RecordProblem:
    record: str  # the HSDS service id, or "#<index>" when it has none
    reason: str


@dataclass(frozen=True)
class DirectoryRecord:
    """One HSDS service: its FHIR resources, keyed by HSDS ids."""

    hsds_id: str
    service: HealthcareService
    organization: Organization
    locations: tuple[Location, ...] = ()
    unmapped_terms: tuple[str, ...] = ()  # taxonomy terms that name no Gravity domain


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)  # "Type/hsds-id"
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    problems: list[RecordProblem] = field(default_factory=list)
    # Taxonomy terms ("taxonomy|code") that map to no Gravity domain -> services carrying them.
    unmapped_terms: dict[str, int] = field(default_factory=dict)

    def count_unmapped(self, records: Sequence[DirectoryRecord]) -> None:
        for record in records:
            for label in record.unmapped_terms:
                self.unmapped_terms[label] = self.unmapped_terms.get(label, 0) + 1

    @property
    def imported(self) -> int:
        """Services written or confirmed up to date."""
        return sum(
            1
            for lst in (self.created, self.updated, self.unchanged)
            for r in lst
            if r.startswith("HealthcareService/")
        )


# ---------------------------------------------------------------------------------------------
# Pure mapping


def map_export(
    data: Any, taxonomy: Mapping[str, str] | None = None
) -> tuple[list[DirectoryRecord], list[RecordProblem]]:
    """Map every service of an HSDS export (any form carecoord.directory.hsds_forms reads); bad
    records become problems, the rest records. `taxonomy`: extra taxonomy map entries."""
    try:
        services, orgs, locs = services_of(data)
    except HsdsFormError as exc:
        raise HsdsRecordError(exc.message) from exc
    mapping = taxonomy_map(taxonomy)
    records: list[DirectoryRecord] = []
    problems: list[RecordProblem] = []
    seen: set[str] = set()
    for index, raw in enumerate(services):
        label = str(raw["id"]) if _has_id(raw) else f"#{index}"
        try:
            record = map_service(raw, orgs, locs, mapping)
        except HsdsRecordError as exc:
            problems.append(RecordProblem(label, exc.message))
            continue
        if record.hsds_id in seen:
            problems.append(RecordProblem(label, "duplicate service id in this export"))
            continue
        seen.add(record.hsds_id)
        records.append(record)
    return records, problems


def map_service(
    raw: Any,
    organizations: Mapping[str, Any] | None = None,
    locations: Mapping[str, Any] | None = None,
    taxonomy: Mapping[str, str] | None = None,
) -> DirectoryRecord:
    """One HSDS service -> DirectoryRecord, or HsdsRecordError saying what is wrong."""
    mapping = taxonomy_map() if taxonomy is None else taxonomy
    if not isinstance(raw, dict):
        raise HsdsRecordError("service is not a JSON object")
    sid = _text(raw.get("id"))
    if not sid:
        raise HsdsRecordError("service has no id")
    name = _text(raw.get("name"))
    if not name:
        raise HsdsRecordError("service has no name")
    status = _text(raw.get("status"))
    if status not in ("active", "inactive", "defunct", "temporarily closed"):
        raise HsdsRecordError(
            "service status must be active, inactive, defunct or temporarily closed"
        )
    org_raw = raw.get("organization")
    if not isinstance(org_raw, dict):
        org_raw = (organizations or {}).get(_text(raw.get("organization_id")) or "")
    if (
        not isinstance(org_raw, dict)
        or not _text(org_raw.get("id"))
        or not _text(org_raw.get("name"))
    ):
        raise HsdsRecordError("service has no organization with an id and a name")

    location_raws = _service_locations(raw, locations or {})
    org_ref = _ref("Organization", _id(org_raw))
    try:
        organization = Organization.model_validate(_organization_json(org_raw))
        mapped_locations = tuple(
            Location.model_validate(_location_json(loc, org_ref)) for loc in location_raws
        )
        service_json, unmapped = _service_json(
            raw, sid, name, status, org_ref, location_raws, mapping
        )
        service = HealthcareService.model_validate(service_json)
    except ValidationError as exc:
        raise HsdsRecordError(f"invalid after mapping to FHIR: {describe_validation(exc)}") from exc
    return DirectoryRecord(sid, service, organization, mapped_locations, tuple(unmapped))


def hsds_reference(resource_type: str, hsds_id: str) -> str:
    """Placeholder reference to another record's resource, resolved at import time."""
    return _ref(resource_type, hsds_id)


def _ref(resource_type: str, hsds_id: str) -> str:
    # Resolved by import_directory to the server id (or the urn:uuid of a create).
    return f"hsds:{resource_type}/{hsds_id}"


def _organization_json(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Organization",
        "identifier": [business_identifier_json(HSDS_ORGANIZATION, _id(raw))],
        "active": True,
        "name": _text(raw["name"]),
        "type": [{"text": "Community-based organization"}],
    }
    telecom = _telecom(raw, website_key="website")
    if telecom:
        out["telecom"] = telecom
    return out


def _service_locations(
    raw: Mapping[str, Any], locations: Mapping[str, Any]
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for sal in raw.get("service_at_locations") or []:
        if not isinstance(sal, dict):
            continue
        loc = sal.get("location")
        if not isinstance(loc, dict):
            loc = locations.get(_text(sal.get("location_id")) or "")
        if isinstance(loc, dict) and _text(loc.get("id")):
            found.append(loc)
    return found


def _location_json(raw: Mapping[str, Any], org_ref: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Location",
        "identifier": [business_identifier_json(HSDS_LOCATION, _id(raw))],
        "status": "active",
        "mode": "instance",
        "managingOrganization": {"reference": org_ref},
    }
    if _text(raw.get("name")):
        out["name"] = _text(raw["name"])
    addresses = [a for a in raw.get("addresses") or [] if isinstance(a, dict)]
    physical = [a for a in addresses if a.get("address_type") in (None, "physical")] or addresses
    if physical:
        out["address"] = _address_json(physical[0])
    lat, lon = raw.get("latitude"), raw.get("longitude")
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        out["position"] = {"latitude": lat, "longitude": lon}
    return out


def _address_json(a: Mapping[str, Any]) -> dict[str, Any]:
    lines = [t for t in (_text(a.get("address_1")), _text(a.get("address_2"))) if t]
    out: dict[str, Any] = {"use": "work", "type": "physical"}
    if lines:
        out["line"] = lines
    for src, dst in (
        ("city", "city"),
        ("state_province", "state"),
        ("postal_code", "postalCode"),
        ("country", "country"),
    ):
        if _text(a.get(src)):
            out[dst] = _text(a[src])
    return out


def _service_json(
    raw: Mapping[str, Any],
    sid: str,
    name: str,
    status: str,
    org_ref: str,
    location_raws: Sequence[Mapping[str, Any]],
    mapping: Mapping[str, str],
) -> tuple[dict[str, Any], list[str]]:
    terms = [t for t in _taxonomy_terms(raw)]
    domains: list[str] = []
    unmapped: list[str] = []
    types = []
    for t in terms:
        if _is_eligibility(t):
            continue
        domain = domain_of(t, mapping)
        if domain is not None:
            domains.append(domain)
            if _text(t.get("code")) == domain:
                continue
        elif term_label(t) not in unmapped:
            unmapped.append(term_label(t))
        code = _text(t.get("code"))
        if not code:
            continue
        taxonomy = _slug(_text(t.get("taxonomy")) or "local")
        coding: dict[str, Any] = {"system": TAXONOMY_SYSTEM_BASE + taxonomy, "code": code}
        if _text(t.get("name")):
            coding["display"] = _text(t["name"])
        types.append({"coding": [coding]})

    categories = service_categories(domains)
    postal_codes, unspecified = _coverage(raw, location_raws)
    contained, coverage = coverage_area(postal_codes, unspecified)
    out: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "identifier": [business_identifier_json(HSDS_SERVICE, sid)],
        "active": status == "active",
        "providedBy": {"reference": org_ref},
        "name": name,
    }
    if contained:
        out["contained"] = contained
        out["coverageArea"] = coverage
    if categories:
        out["category"] = categories
    if types:
        out["type"] = types
    if location_raws:
        out["location"] = [{"reference": _ref("Location", _id(loc))} for loc in location_raws]
    if _text(raw.get("description")):
        out["comment"] = _text(raw["description"])
    telecom = _telecom(raw, website_key="url")
    if telecom:
        out["telecom"] = telecom
    languages = _languages(raw)
    if languages:
        out["communication"] = [
            {"coding": [{"system": LANGUAGE_SYSTEM, "code": code}]} for code in languages
        ]
    eligibility = _eligibility(raw, terms)
    if eligibility:
        out["eligibility"] = eligibility
    return out, unmapped


def _taxonomy_terms(raw: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    for attr in raw.get("attributes") or []:
        if not isinstance(attr, dict):
            continue
        term = attr.get("taxonomy_term")
        if isinstance(term, dict):
            yield {**term, "_link_type": attr.get("link_type")}


def _is_eligibility(term: Mapping[str, Any]) -> bool:
    return "eligibility" in (
        _text(term.get("_link_type")) or "",
        _slug(_text(term.get("taxonomy")) or ""),
    )


def _coverage(
    raw: Mapping[str, Any], location_raws: Sequence[Mapping[str, Any]]
) -> tuple[list[str], list[tuple[str | None, str | None]]]:
    """(postal codes served, areas without postal codes as (name, description))."""
    codes: list[str] = []
    unspecified: list[tuple[str | None, str | None]] = []
    areas = [a for a in raw.get("service_areas") or [] if isinstance(a, dict)]
    for area in areas:
        found: list[str] = []
        extent = _text(area.get("extent"))
        extent_type = (_text(area.get("extent_type")) or "text").lower()
        if extent and extent_type in _POSTAL_EXTENT_TYPES:
            tokens = [p for p in re.split(r"[,;\s]+", extent) if p]
            postal = [p for p in tokens if _POSTAL.match(p) and any(ch.isdigit() for ch in p)]
            # Free text is a postal-code list only when it holds nothing else ("02139, 02141");
            # "residents of MyCity, ages 12 and up" names a place: coverage not known.
            if extent_type != "text" or len(postal) == len(tokens):
                found.extend(postal)
        name = _text(area.get("name"))
        if name and _POSTAL.match(name) and any(ch.isdigit() for ch in name):
            found.append(name)
        if found:
            codes.extend(found)
        else:
            unspecified.append((name, _text(area.get("description")) or extent))
    if not areas:
        for loc in location_raws:
            for a in loc.get("addresses") or []:
                if isinstance(a, dict) and _text(a.get("postal_code")):
                    codes.append(_text(a["postal_code"]) or "")
    return sorted({normalize_postal_code(c) for c in codes if c}), unspecified


def normalize_postal_code(code: str) -> str:
    """Compare postal codes case- and space-insensitively; US ZIP+4 counts as its ZIP."""
    c = code.strip().upper().replace(" ", "")
    if re.fullmatch(r"\d{5}-?\d{4}", c):
        return c[:5]
    return c


def normalize_language(value: str) -> str:
    """A BCP-47 primary language subtag ("es"), from a code ("es-MX") or an English name."""
    v = value.strip().lower()
    if v in _LANGUAGE_NAMES:
        return _LANGUAGE_NAMES[v]
    return v.replace("_", "-").split("-")[0]


def _languages(raw: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for lang in raw.get("languages") or []:
        if isinstance(lang, str):
            value: str | None = lang
        elif isinstance(lang, dict):
            value = _text(lang.get("code")) or _text(lang.get("name"))
        else:
            value = None
        if value:
            code = normalize_language(value)
            if code not in out:
                out.append(code)
    return out


def _eligibility(
    raw: Mapping[str, Any], terms: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in terms:
        code = _text(t.get("code"))
        if code and _is_eligibility(t):
            coding: dict[str, Any] = {"system": ELIGIBILITY_SYSTEM, "code": _slug(code)}
            if _text(t.get("name")):
                coding["display"] = _text(t["name"])
            out.append({"code": {"coding": [coding]}})
    description = _text(raw.get("eligibility_description"))
    low, high = raw.get("minimum_age"), raw.get("maximum_age")
    ages: dict[str, Any] = {}
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, int | float) and not isinstance(value, bool):
            ages[key] = {"value": value, "unit": "a", "system": UCUM, "code": "a"}
    if description or ages:
        entry: dict[str, Any] = out[0] if out else {}
        if description:
            entry["comment"] = description
        if ages:
            entry["extension"] = [{"url": AGE_RANGE_EXTENSION, "valueRange": ages}]
        if not out:
            out.append(entry)
    return out


def _telecom(raw: Mapping[str, Any], *, website_key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for phone in raw.get("phones") or []:
        number = _text(phone.get("number")) if isinstance(phone, dict) else None
        if number:
            out.append({"system": "phone", "value": number, "use": "work"})
    if _text(raw.get("email")):
        out.append({"system": "email", "value": _text(raw["email"]), "use": "work"})
    if _text(raw.get(website_key)):
        out.append({"system": "url", "value": _text(raw[website_key]), "use": "work"})
    return out


def _text(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value.strip() or None if isinstance(value, str) else None


def _id(obj: Mapping[str, Any]) -> str:
    return _text(obj.get("id")) or ""


def _has_id(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(_text(obj.get("id")))


def _slug(value: str) -> str:
    return _SLUG.sub("-", value.lower()).strip("-")


# ---------------------------------------------------------------------------------------------
# Import (I/O through a FhirClient)


class DirectoryWriter(Protocol):
    """What import_directory needs of carecoord.fhir.client.FhirClient."""

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]: ...

    def apply(self, writes: Sequence[FhirWrite]) -> Any: ...


def import_directory(
    client: DirectoryWriter, data: Any, taxonomy: Mapping[str, str] | None = None
) -> ImportReport:
    """Load an HSDS export: each service with its organization and locations in one transaction.

    Re-import updates changed resources in place (found by their HSDS business identifier) and
    leaves unchanged ones alone; records that cannot be mapped or written are reported, the rest
    imported.
    """
    from carecoord.fhir.errors import FhirError

    records, problems = map_export(data, taxonomy)
    report = ImportReport(problems=list(problems))
    report.count_unmapped(records)
    for record in records:
        try:
            _import_record(client, record, report)
        except (FhirError, HsdsRecordError) as exc:
            if isinstance(exc, FhirError) and exc.transient:
                raise  # the server is unreachable or overloaded: stop, re-run later (idempotent)
            report.problems.append(RecordProblem(record.hsds_id, f"not imported: {exc.message}"))
    return report


def _import_record(client: DirectoryWriter, record: DirectoryRecord, report: ImportReport) -> None:
    writes: list[FhirWrite] = []
    refs: dict[str, str] = {}
    outcome: list[tuple[str, str]] = []

    def stage(kind: str, resource: Resource, hsds_id: str) -> None:
        rtype = resource.get_resource_type()
        label = f"{rtype}/{hsds_id}"
        existing = client.search(rtype, identifier_search(kind, hsds_id))
        if existing:
            current = existing[0]
            refs[f"hsds:{rtype}/{hsds_id}"] = f"{rtype}/{current.id}"
            staged = _resolve(resource, refs)
            staged.id = current.id
            if _same(staged, current):
                outcome.append(("unchanged", label))
                return
            meta = getattr(current, "meta", None)
            version = str(meta.versionId) if meta is not None and meta.versionId else None
            writes.append(Update(staged, version))
            outcome.append(("updated", label))
        else:
            create = Create(_resolve(resource, refs), *_identifier(resource))
            refs[f"hsds:{rtype}/{hsds_id}"] = create.full_url
            writes.append(create)
            outcome.append(("created", label))

    stage(HSDS_ORGANIZATION, record.organization, _hsds_id(record.organization))
    for loc in record.locations:
        stage(HSDS_LOCATION, loc, _hsds_id(loc))
    stage(HSDS_SERVICE, record.service, record.hsds_id)
    if writes:
        client.apply(writes)
    for what, label in outcome:
        getattr(report, what).append(label)


def _identifier(resource: Resource) -> tuple[str, str]:
    ident = resource.identifier[0]  # type: ignore[attr-defined]
    return str(ident.system), str(ident.value)


def _hsds_id(resource: Resource) -> str:
    return _identifier(resource)[1]


def _resolve(resource: Resource, refs: Mapping[str, str]) -> Resource:
    """Copy of `resource` with hsds: placeholder references replaced."""
    data = to_json(resource)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (refs.get(v, v) if k == "reference" and isinstance(v, str) else walk(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    resolved = walk(data)
    unresolved = _find_placeholders(resolved)
    if unresolved:
        raise HsdsRecordError(f"unresolved directory references: {', '.join(unresolved)}")
    return revised(resource, resolved)


def _find_placeholders(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node] if node.startswith("hsds:") else []
    if isinstance(node, dict):
        return [r for v in node.values() for r in _find_placeholders(v)]
    if isinstance(node, list):
        return [r for x in node for r in _find_placeholders(x)]
    return []


def _same(staged: Resource, current: Resource) -> bool:
    def strip(r: Resource) -> dict[str, Any]:
        d = to_json(r)
        d.pop("meta", None)
        d.pop("text", None)
        return d

    return strip(staged) == strip(current)
