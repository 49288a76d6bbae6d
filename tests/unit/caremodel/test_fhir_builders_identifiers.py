"""Business identifiers are deterministic, readable, searchable and short; Create effects."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carecoord.caremodel import builders as care
from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import (
    MAX_VALUE_LENGTH,
    add_create,
    business_identifier,
    create_for,
    identifier_search,
    identifier_system,
    identifier_value,
)
from carecoord.core.effects import Effects


def test_identifier_is_readable_and_in_carecoords_namespace() -> None:
    ident = business_identifier("outreach-request", "pat-1", "CCM", "2024-05")
    assert ident.system == t.IDENTIFIER_SYSTEM_BASE + "outreach-request"
    assert ident.value == "pat-1:CCM:2024-05"


def test_search_unsafe_characters_are_replaced_and_the_value_stays_unique() -> None:
    value = identifier_value("a|b", "c,d", "e f")
    assert value.startswith("a_b~") and value.endswith(":c_d:e_f") and not set("|, ") & set(value)
    # Two event ids that differ only in a replaced character are two time entries, not a replay.
    assert identifier_value("evt|1") != identifier_value("evt,1") != identifier_value("evt_1")
    assert identifier_value("evt_1") == "evt_1"  # clean keys are unchanged


@given(st.lists(st.text(min_size=1, max_size=80).filter(str.strip), min_size=1, max_size=5))
def test_values_are_stable_short_and_distinct_for_distinct_long_keys(parts: list[str]) -> None:
    value = identifier_value(*parts)
    assert value == identifier_value(*parts)
    assert len(value) <= MAX_VALUE_LENGTH
    assert not set("|,$\\") & set(value)
    longer = identifier_value(*parts, "x" * 70)
    assert longer != value


def test_long_keys_differing_only_at_the_end_get_different_values() -> None:
    base = "p" * 80
    assert identifier_value(base, "1") != identifier_value(base, "2")


@pytest.mark.parametrize("kind", ["", "Care", "care plan", "x" * 70])
def test_bad_kinds_are_rejected(kind: str) -> None:
    with pytest.raises(ValueError):
        identifier_system(kind)


def test_empty_parts_are_rejected() -> None:
    with pytest.raises(ValueError):
        identifier_value()
    with pytest.raises(ValueError):
        identifier_value("a", " ")


def test_create_effect_from_a_built_resource() -> None:
    plan = care.care_plan(patient="Patient/p1", program="CCM", start=date(2024, 5, 1))
    create = create_for(plan)
    assert create.identifier_system == identifier_system("care-plan")
    assert create.identifier_value == "p1:CCM:2024-05-01"
    assert create.if_none_exist == f"identifier={identifier_system('care-plan')}|p1:CCM:2024-05-01"
    effects = Effects()
    url = add_create(effects, plan)
    assert url == create.full_url and url.startswith("urn:uuid:")
    assert effects.writes == [create]
    assert identifier_search("care-plan", "p1", "CCM", "2024-05-01") == {
        "identifier": f"{identifier_system('care-plan')}|p1:CCM:2024-05-01"
    }


def test_create_needs_a_carecoord_identifier() -> None:
    from fhir.resources.R4B.task import Task

    with pytest.raises(ValueError, match="business identifier"):
        create_for(Task.model_validate({"status": "ready", "intent": "order"}))


def test_terminology_helpers() -> None:
    coding = t.MODE_PHONE.coding()
    assert t.MODE_PHONE.matches(coding)
    assert t.MODE_PHONE.matches({"system": t.PARTICIPATION_MODE_SYSTEM, "code": "PHONE"})
    concept = t.ROLE_CARE_COORDINATOR.concept(text="care manager", version="R5")
    assert t.concept_has(concept, t.ROLE_CARE_COORDINATOR)
    assert not t.concept_has(concept, t.MODE_PHONE)
    assert set(t.CHANNEL_MEDIUM) == {"phone", "sms", "video", "letter", "portal"}
    assert set(t.PROGRAMS) == {"CCM", "PCM", "RPM", "TCM", "BHI", "APCM"}
    assert t.SDOH_DOMAINS["food-insecurity"].condition.code == "733423003"


def test_a_long_first_part_is_shortened_and_the_parts_after_it_kept() -> None:
    """Lookups match on a key's end (the month's requests end in ":CCM:2025-03")."""
    for pid in ("p" * 64, "q" * 53):
        value = identifier_value(pid, "CCM", "2025-03")
        assert len(value) == MAX_VALUE_LENGTH and value.endswith(":CCM:2025-03")
    assert identifier_value("p" * 64, "CCM", "2025-03") != identifier_value(
        "p" * 63 + "q", "CCM", "2025-03"
    )
