"""The ranking remembers a service's facts per server version (handlers/referrals/ranking.py
`known_facts`): a referral after the first reads the directory without re-extracting them, and
an update (a new versionId / lastUpdated) is ranked as it now is."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.healthcareservice import HealthcareService

from carecoord.handlers.referrals import ranking
from carecoord.handlers.referrals.ranking import rank
from support.referrals import FOOD_NEED, food_service

NEED = FOOD_NEED


def service(sid: str, capacity: str, version: str | None, updated: str) -> HealthcareService:
    meta = {"meta": {"versionId": version, "lastUpdated": updated}} if version else {}
    return food_service(sid, capacity, **meta)


def order(*services: HealthcareService) -> list[str]:
    return [c.service.removeprefix("HealthcareService/") for c in rank(services, NEED)]


@pytest.fixture
def extractions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = ranking.facts_of

    def counting(s: Any) -> ranking.ServiceFacts:
        seen.append(str(s.id))
        return original(s)

    monkeypatch.setattr(ranking, "facts_of", counting)
    monkeypatch.setattr(ranking, "_FACTS", type(ranking._FACTS)())
    return seen


def test_the_same_version_is_extracted_once(extractions: list[str]) -> None:
    a = service("a", "capacity", "1", "2026-12-01T00:00:00Z")
    b = service("b", "waitlist", "4", "2026-12-01T00:00:00Z")
    assert order(a, b) == order(a, b) == ["a", "b"]
    assert sorted(extractions) == ["a", "b"]


def test_an_update_is_ranked_as_it_now_is(extractions: list[str]) -> None:
    a = service("a", "capacity", "1", "2026-12-01T00:00:00Z")
    b = service("b", "waitlist", "1", "2026-12-01T00:00:00Z")
    assert order(a, b) == ["a", "b"]
    full = service("a", "no-capacity", "2", "2026-12-02T00:00:00Z")
    opened = service("b", "capacity", "1", "2026-12-03T00:00:00Z")  # same versionId, recreated
    assert order(full, opened) == ["b", "a"]


def test_a_service_without_a_version_is_never_remembered(extractions: list[str]) -> None:
    before = service("a", "capacity", None, "")
    after = service("a", "no-capacity", None, "")
    other = service("b", "waitlist", None, "")
    assert order(before, other) == ["a", "b"]
    assert order(after, other) == ["b", "a"]
    assert extractions == ["a", "b", "a", "b"] and not ranking._FACTS


def test_at_most_facts_kept_are_remembered(
    extractions: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranking, "FACTS_KEPT", 3)
    for n in range(5):
        order(service(f"s{n}", "capacity", "1", "2026-12-01T00:00:00Z"))
    assert len(ranking._FACTS) == 3
    order(service("s0", "capacity", "1", "2026-12-01T00:00:00Z"))  # the oldest went first
    assert extractions.count("s0") == 2
