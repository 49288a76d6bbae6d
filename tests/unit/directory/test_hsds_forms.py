"""HSDS 3.0 in every form Open Referral publishes (its own example payloads, copied into
tests/fixtures/hsds), service areas without postal codes, the taxonomy map, the tabular
datapackage, and `directory sync` against an HSDS API served here; plus the one directory shape
shared by the builders, the importer and the ranking."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from carecoord.core.effects import Effects, FhirWrite
from carecoord.directory import builders as directory
from carecoord.directory.hsds import import_directory, map_export
from carecoord.directory.sync import sync_directory
from carecoord.directory.tabular import read_datapackage
from carecoord.directory.taxonomy import DEFAULT_TAXONOMY_MAP, domain_of, taxonomy_map
from carecoord.fhir.models import parse_resource, to_json
from carecoord.handlers.referrals.ranking import ReferralCriteria, facts_of, rank
from support.handler_context import FakeFhir
from support.paths import FIXTURES, ROOT

FIXTURES = FIXTURES / "hsds"
SERVICE_ID = "ac148810-d857-441c-9679-408f346de14b"
# The official examples' taxonomy term is a placeholder ("taxonomy" / "code"): a user maps it.
EXAMPLE_MAP = {"taxonomy|code": "food-insecurity"}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class Writer:
    def __init__(self) -> None:
        self.fake = FakeFhir()

    def search(self, resource_type: str, params: Any) -> list[Any]:
        return self.fake.search(resource_type, params)

    def apply(self, writes: Sequence[FhirWrite]) -> None:
        self.fake.apply(Effects(writes=list(writes)))


@pytest.mark.parametrize(
    ("name", "domains"),
    [
        ("service_full.json", {"food-insecurity"}),
        ("organization_full.json", {"food-insecurity"}),
        # An API page lists services without their attributes: imported, not yet matchable
        # (`directory sync` reads /services/{id} for those).
        ("service_list.json", set()),
    ],
)
def test_each_official_api_form_imports_the_example_service(name: str, domains: set[str]) -> None:
    records, problems = map_export(load(name), EXAMPLE_MAP)
    assert problems == []
    assert SERVICE_ID in {r.hsds_id for r in records}
    record = next(r for r in records if r.hsds_id == SERVICE_ID)
    assert record.organization.name
    facts = facts_of(parse_resource({**to_json(record.service), "id": "s1"}))
    assert facts.domains == domains


def test_an_organization_list_page_with_nested_services_is_read() -> None:
    page = load("organization_list.json")
    org = copy.deepcopy(load("organization_full.json"))
    page["contents"] = [org]
    records, problems = map_export(page, EXAMPLE_MAP)
    assert problems == [] and [r.hsds_id for r in records] == [SERVICE_ID]
    assert records[0].organization.name == org["name"]


def test_a_geojson_service_area_leaves_coverage_unknown_not_the_sites_zip() -> None:
    # The official example's only service area is geojson (no postal code); its site is in
    # "ABC 1234". The service must not be narrowed to that ZIP code.
    (record,), _ = map_export(load("service_full.json"), EXAMPLE_MAP)
    service = parse_resource({**to_json(record.service), "id": "s1"})
    facts = facts_of(service)
    assert facts.postal_codes == frozenset()
    (area,) = to_json(record.service)["contained"]
    assert "postalCode" not in area.get("address", {}) and area["name"]
    criteria = ReferralCriteria(domain="food-insecurity", postal_code="62701")
    (candidate,) = rank([service], criteria)
    assert candidate.score[1] == 1  # coverage not known (below "postal code listed")


@pytest.mark.parametrize(
    ("extent", "expected"),
    [("02139, 02141", {"02139", "02141"}), ("Residents of MyCity aged 12 and over", set())],
)
def test_text_service_areas_are_postal_codes_only_when_they_list_nothing_else(
    extent: str, expected: set[str]
) -> None:
    svc = copy.deepcopy(load("service_full.json"))
    svc["service_areas"] = [{"id": "a1", "name": "area", "extent": extent, "extent_type": "text"}]
    (record,), _ = map_export(svc, EXAMPLE_MAP)
    assert facts_of(parse_resource({**to_json(record.service), "id": "s"})).postal_codes == (
        frozenset(expected)
    )


@pytest.mark.parametrize(
    ("code", "domain"),
    [
        ("BD-1800", "food-insecurity"),
        ("BD-1800.2000", "food-insecurity"),
        ("BH-1800.8500", "housing-instability"),
        ("BT-4500", "transportation-insecurity"),
        ("BV-8900.9300", "utility-insecurity"),
        ("utility-insecurity", "utility-insecurity"),
        ("BD-1900", None),
        ("BHX", None),
        ("RP-1400", None),
    ],
)
def test_211_airs_codes_map_to_gravity_domains(code: str, domain: str | None) -> None:
    assert domain_of({"code": code, "taxonomy": "AIRS"}, DEFAULT_TAXONOMY_MAP) == domain


@pytest.mark.parametrize(
    ("code", "taxonomy", "domain"),
    [
        # ids and titles from auntbertha/openeligibility `taxonomy` v2.0
        ("1102", "Open Eligibility", "food-insecurity"),  # Food
        ("1130", "open_eligibility", "food-insecurity"),  # Food Pantry
        ("1120", "OpenEligibility", "food-insecurity"),  # Emergency > Emergency Food
        ("1136", "Open Eligibility", "housing-instability"),  # Help Find Housing
        ("1135", "Open Eligibility", "homelessness"),  # Emergency Shelter
        ("1138", "Open Eligibility", "utility-insecurity"),  # Help Pay for Utilities
        ("1173", "Open Eligibility", "transportation-insecurity"),  # Bus Passes
        ("1232", "Open Eligibility", "financial-insecurity"),  # Financial Assistance
        ("1184", "Open Eligibility", None),  # Dental Care: no Gravity domain
        ("1149", "Open Eligibility", None),  # Nursing Home: housing, but not instability
        ("1102", "AIRS", None),  # a bare number of another taxonomy is not Open Eligibility
        ("1102", "", None),
    ],
)
def test_open_eligibility_terms_map_to_gravity_domains(
    code: str, taxonomy: str, domain: str | None
) -> None:
    assert domain_of({"code": code, "taxonomy": taxonomy}, DEFAULT_TAXONOMY_MAP) == domain


def test_the_sample_directorys_open_eligibility_terms_are_real_and_agree_with_its_domains() -> None:
    from carecoord.directory.open_eligibility import TERMS

    sample = ROOT / "examples" / "directory" / "springfield-hsds.json"
    for svc in json.loads(sample.read_text())["services"]:
        terms = [a["taxonomy_term"] for a in svc.get("attributes", [])]
        gravity = {tt["code"] for tt in terms if tt["taxonomy"] == "sdohcc"}
        oe = [tt for tt in terms if tt["taxonomy"] == "open-eligibility"]
        assert oe, svc["name"]
        assert [TERMS[tt["code"]][0] for tt in oe] == [tt["name"] for tt in oe], svc["name"]
        assert {domain_of(tt, DEFAULT_TAXONOMY_MAP) for tt in oe} == gravity, svc["name"]


def test_an_hsds_import_with_open_eligibility_terms_makes_the_service_matchable() -> None:
    svc = copy.deepcopy(load("service_full.json"))
    term = svc["attributes"][0]["taxonomy_term"]
    svc["attributes"] = [
        {"id": "a1", "taxonomy_term": {**term, "code": "1130", "name": "Food Pantry",
                                       "taxonomy": "Open Eligibility"}},
        {"id": "a2", "taxonomy_term": {**term, "code": "1184", "name": "Dental Care",
                                       "taxonomy": "Open Eligibility"}},
    ]  # fmt: skip
    svc["service_areas"] = [{"id": "z", "name": "62701", "extent": "62701",
                             "extent_type": "postcode"}]  # fmt: skip
    writer = Writer()
    report = import_directory(writer, svc)
    assert report.problems == []
    assert report.unmapped_terms == {"Open Eligibility|1184": 1}
    (service,) = writer.fake.all("HealthcareService")
    (match,) = rank([service], ReferralCriteria(domain="food-insecurity", postal_code="62701"))
    assert match.service == f"HealthcareService/{service.id}"
    housing = ReferralCriteria(domain="housing-instability", postal_code="62701")
    assert rank([service], housing) == []


def test_the_taxonomy_map_is_extended_in_configuration_and_unmapped_terms_are_reported() -> None:
    svc = copy.deepcopy(load("service_full.json"))
    records, _ = map_export(svc)
    assert records[0].unmapped_terms == ("taxonomy|code",)
    report = import_directory(Writer(), svc)
    assert report.unmapped_terms == {"taxonomy|code": 1}
    assert domain_of({"name": "Food", "taxonomy": "Open Eligibility"}, taxonomy_map()) is None
    mapping = taxonomy_map({"name:Food": "food-insecurity"})
    assert domain_of({"name": "Food", "taxonomy": "Open Eligibility"}, mapping) == (
        "food-insecurity"
    )
    with pytest.raises(Exception, match="Gravity SDOH domain"):
        taxonomy_map({"X": "weather"})


def test_the_tabular_datapackage_is_read() -> None:
    data = read_datapackage(FIXTURES / "csv")
    (service,) = data["services"]
    assert service["id"] == SERVICE_ID and service["organization"]["name"]
    assert service["service_at_locations"][0]["location"]["addresses"][0]["postal_code"]
    records, problems = map_export(data, EXAMPLE_MAP)
    assert problems == [] and records[0].hsds_id == SERVICE_ID
    assert records[0].locations[0].address is not None


def test_the_builders_and_the_importer_write_one_shape_the_ranking_matches() -> None:
    built = to_json(
        directory.healthcare_service(
            source="local",
            source_id="pantry",
            name="Pantry",
            organization="Organization/o1",
            domains=["food-insecurity"],
            service_area_postal_codes=["62701"],
        )
    )
    criteria = ReferralCriteria(domain="food-insecurity", postal_code="62701")
    (match,) = rank([parse_resource({**built, "id": "b1"})], criteria)
    assert match.score[1] == 2  # the postal code listed
    elsewhere = dataclasses.replace(criteria, postal_code="99999")
    assert rank([parse_resource({**built, "id": "b1"})], elsewhere) == []


class _Api(BaseHTTPRequestHandler):
    services: list[dict[str, Any]] = []
    calls: list[str] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.calls.append(url.path)
        if url.path == "/hsds/services":
            q = parse_qs(url.query)
            page, per = int(q["page"][0]), int(q["per_page"][0])
            chunk = self.services[(page - 1) * per : page * per]
            total = max(1, -(-len(self.services) // per))
            # Summaries only: the client fetches /services/{id} for the full service.
            body: Any = {
                "total_items": len(self.services),
                "total_pages": total,
                "page_number": page,
                "size": per,
                "first_page": page == 1,
                "last_page": page >= total,
                "empty": not chunk,
                "contents": [{"id": s["id"], "name": s["name"]} for s in chunk],
            }
        elif url.path.startswith("/hsds/services/"):
            sid = url.path.rsplit("/", 1)[1]
            body = next((s for s in self.services if s["id"] == sid), None)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
        else:
            self.send_response(404)
            self.end_headers()
            return
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def hsds_api() -> Iterator[str]:
    base = load("service_full.json")
    services = []
    for n in range(5):
        svc = copy.deepcopy(base)
        svc["id"] = f"svc-{n}"
        svc["name"] = f"Service {n}"
        services.append(svc)
    _Api.services = services
    _Api.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hsds"
    finally:
        server.shutdown()
        server.server_close()


def test_directory_sync_reads_every_page_and_is_idempotent(hsds_api: str) -> None:
    writer = Writer()
    report = sync_directory(writer, hsds_api, taxonomy=EXAMPLE_MAP, per_page=2)
    assert report.imported == 5 and report.problems == []
    assert [c for c in _Api.calls if c == "/hsds/services"] == ["/hsds/services"] * 3
    assert len(writer.fake.all("HealthcareService")) == 5
    again = sync_directory(writer, hsds_api, taxonomy=EXAMPLE_MAP, per_page=2)
    assert again.created == [] and again.updated == []
    assert len(writer.fake.all("HealthcareService")) == 5
