"""Open Referral HSDS -> HealthcareService / Organization / Location, and idempotent import."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from carecoord.core.effects import Effects, FhirWrite
from carecoord.directory.hsds import import_directory, map_export
from carecoord.handlers.referrals.ranking import ReferralCriteria, facts_of, rank
from support.handler_context import FakeFhir
from support.paths import ROOT

SAMPLE = json.loads((ROOT / "examples" / "directory" / "springfield-hsds.json").read_text())


class Writer:
    def __init__(self) -> None:
        self.fake = FakeFhir()

    def search(self, resource_type: str, params: Any) -> list[Any]:
        return self.fake.search(resource_type, params)

    def apply(self, writes: Sequence[FhirWrite]) -> None:
        self.fake.apply(Effects(writes=list(writes)))


def by_name(records: list[Any], name: str) -> Any:
    return next(r for r in records if r.service.name == name)


def test_sample_directory_maps_domains_coverage_languages_and_eligibility() -> None:
    records, problems = map_export(SAMPLE)
    assert problems == []
    assert len(records) == 12
    seniors = facts_of(_with_id(by_name(records, "Senior grocery box (CSFP)").service))
    assert seniors.domains == {"food-insecurity"}
    assert seniors.postal_codes == {"62701", "62702", "62703", "62704"}
    assert seniors.eligibility_codes == {"seniors"} and seniors.min_age == 60
    pantry = facts_of(_with_id(by_name(records, "Weekly food pantry").service))
    assert pantry.languages == {"en", "es"}
    closed = facts_of(_with_id(by_name(records, "Saturday produce market").service))
    assert closed.active is False


def test_bad_records_are_reported_and_skipped() -> None:
    data = copy.deepcopy(SAMPLE)
    data["services"][0].pop("name")
    data["services"][1]["status"] = "open-ish"
    data["services"][2].pop("organization")
    data["services"].append("not an object")
    data["services"].append(copy.deepcopy(data["services"][3]))  # duplicate id
    records, problems = map_export(data)
    assert len(records) == 9
    reasons = {p.record: p.reason for p in problems}
    assert reasons[data["services"][0]["id"]] == "service has no name"
    assert "status" in reasons[data["services"][1]["id"]]
    assert "organization" in reasons[data["services"][2]["id"]]
    assert reasons["#12"] == "service is not a JSON object"
    assert "duplicate" in reasons[data["services"][3]["id"]]


def test_reimport_updates_and_never_duplicates() -> None:
    writer = Writer()
    first = import_directory(writer, SAMPLE)
    assert first.imported == 12 and first.problems == []
    counts = {rt: len(writer.fake.all(rt)) for rt in ("HealthcareService", "Organization")}
    assert counts == {"HealthcareService": 12, "Organization": 9}
    assert len(writer.fake.all("Location")) == 8

    changed = copy.deepcopy(SAMPLE)
    changed["services"][0]["status"] = "inactive"
    second = import_directory(writer, changed)
    assert second.created == []
    assert second.updated == [f"HealthcareService/{changed['services'][0]['id']}"]
    assert {rt: len(writer.fake.all(rt)) for rt in counts} == counts
    services = writer.fake.all("HealthcareService")
    assert sum(1 for s in services if s.active is False) == 2
    # References point at the stored resources.
    org_ids = {o.id for o in writer.fake.all("Organization")}
    assert all(s.providedBy.reference.split("/")[1] in org_ids for s in services)


def test_ranking_order_and_exclusions() -> None:
    writer = Writer()
    import_directory(writer, SAMPLE)
    services = writer.fake.all("HealthcareService")
    food = ReferralCriteria(domain="food-insecurity", postal_code="62701", language="en")
    names = [c.name for c in rank(services, food)]
    # Inactive and out-of-area services never appear; unknown eligibility ranks last.
    assert names == [
        "Mobile food distribution",
        "St. John's emergency food box",
        "Weekly food pantry",
        "Senior grocery box (CSFP)",
    ]
    spanish = ReferralCriteria(domain="food-insecurity", postal_code="62703", language="es")
    assert rank(services, spanish)[0].name in ("Despensa comunitaria", "Weekly food pantry")
    young = ReferralCriteria(domain="food-insecurity", postal_code="62701", age=30)
    assert "Senior grocery box (CSFP)" not in [c.name for c in rank(services, young)]
    senior = ReferralCriteria(
        domain="food-insecurity", postal_code="62701", age=70, eligibility=frozenset({"seniors"})
    )
    # An eligible senior: the seniors-only box ranks with the others (by name).
    assert [c.name for c in rank(services, senior)][:2] == [
        "Mobile food distribution",
        "Senior grocery box (CSFP)",
    ]
    tried = {c.service for c in rank(services, food)[:2]}
    assert rank(services, food, exclude=tried)[0].name == "Weekly food pantry"


def _with_id(resource: Any) -> Any:
    return resource.model_copy(update={"id": "x"})
