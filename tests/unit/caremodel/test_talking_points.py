"""Talking points (caremodel.talking_points): the shipped catalog, matching by ICD-10-CM prefix
and SNOMED CT concept id, a user's override file, and a bad file as a ConfigError."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.condition import Condition

from carecoord.caremodel import terminology as t
from carecoord.caremodel.talking_points import load_catalog, shipped_catalog
from carecoord.errors import ConfigError
from carecoord.settings import load_settings

CHRONIC = {"diabetes", "hypertension", "heart-failure", "copd", "asthma", "ckd", "depression"}


def condition(cid: str, system: str, code: str, **more: Any) -> Condition:
    return Condition.model_validate(
        {
            "resourceType": "Condition",
            "id": cid,
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": system, "code": code}]},
            **more,
        }
    )


def topics(*conditions: Condition, catalog: Any = None) -> dict[str, tuple[str, ...]]:
    catalog = catalog or shipped_catalog()
    return {m.topic.id: m.conditions for m in catalog.matching(conditions)}


def test_the_shipped_catalog_covers_the_common_chronic_conditions_with_cited_prompts() -> None:
    catalog = shipped_catalog()
    ids = {topic.id for topic in catalog.topics}
    assert CHRONIC | {"medication-adherence"} <= ids
    for topic in catalog.topics:
        assert topic.prompts, topic.id
        for prompt in topic.prompts:
            host = re.match(r"https://www\.([a-z.]+)/", prompt.source.url)
            assert host and host.group(1).endswith(("nih.gov", "cdc.gov")), prompt.source.url
            assert not re.search(r"\d+\s*(mg|mcg|units?)\b", prompt.text), prompt.text  # no doses
    adherence = next(t for t in catalog.topics if t.id == "medication-adherence")
    assert any("not taking as prescribed" in p.text for p in adherence.prompts)


@pytest.mark.parametrize(
    ("code", "topic"),
    [
        ("E11.9", "diabetes"),
        ("E119", "diabetes"),
        ("e10.65", "diabetes"),
        ("I10", "hypertension"),
        ("I50.22", "heart-failure"),
        ("J44.1", "copd"),
        ("J45.909", "asthma"),
        ("N18.30", "ckd"),
        ("F32.A", "depression"),
        ("F33.1", "depression"),
    ],
)
def test_an_icd10cm_code_matches_by_category_prefix(code: str, topic: str) -> None:
    found = topics(condition("c1", t.ICD10CM, code))
    assert found[topic] == ("Condition/c1",)
    assert set(found) - {topic} == {"medication-adherence"}


@pytest.mark.parametrize(
    ("code", "topic"),
    [
        ("44054006", "diabetes"),
        ("73211009", "diabetes"),
        ("38341003", "hypertension"),
        ("84114007", "heart-failure"),
        ("13645005", "copd"),
        ("195967001", "asthma"),
        ("709044004", "ckd"),
        ("35489007", "depression"),
    ],
)
def test_a_snomed_concept_matches_by_its_id(code: str, topic: str) -> None:
    assert topic in topics(condition("c1", t.SNOMED, code))


def test_what_does_not_match() -> None:
    assert topics(condition("c1", t.ICD10CM, "E78.5")) == {"medication-adherence": ()}
    assert "diabetes" not in topics(condition("c1", t.SNOMED, "4405400"))  # not a prefix match
    assert "diabetes" not in topics(condition("c1", "http://example.org/codes", "E11.9"))
    assert "diabetes" not in topics(condition("c1", t.SNOMED, "E11.9"))
    erroneous = condition(
        "c1",
        t.ICD10CM,
        "E11.9",
        verificationStatus={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "entered-in-error",
                }
            ]
        },
    )
    assert "diabetes" not in topics(erroneous)


def test_topics_keep_the_catalog_order_and_name_every_matching_condition() -> None:
    found = topics(
        condition("c2", t.SNOMED, "84114007"),
        condition("c1", t.ICD10CM, "E11.9"),
        condition("c3", t.SNOMED, "44054006"),
    )
    assert list(found) == ["diabetes", "heart-failure", "medication-adherence"]
    assert found["diabetes"] == ("Condition/c1", "Condition/c3")


SOURCE = {"publisher": "Our clinic", "title": "Gout care", "url": "https://clinic.example/gout"}


HTTP_SOURCE = {
    "id": "x",
    "title": "X",
    "match": {"icd10cm": ["E11"]},
    "prompts": [{"text": "Hi?", "source": {**SOURCE, "url": "http://clinic.example/x"}}],
}


def write(tmp_path: Path, data: Any, name: str = "points.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_a_user_file_replaces_removes_and_adds_topics(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "topics": [
                {"id": "asthma", "enabled": False},
                {
                    "id": "diabetes",
                    "title": "Diabetes (our clinic)",
                    "match": {"icd10cm": ["E11"]},
                    "prompts": [{"text": "How are your glucose logs?", "source": SOURCE}],
                },
                {
                    "id": "gout",
                    "title": "Gout",
                    "match": {"icd10cm": ["M10"]},
                    "prompts": [{"text": "Any flares since we spoke?", "source": SOURCE}],
                },
            ]
        },
        "points.json",
    )
    catalog = load_catalog(path)
    ids = [topic.id for topic in catalog.topics]
    assert "asthma" not in ids and ids[0] == "diabetes" and ids[-1] == "gout"
    found = {
        m.topic.id: m.topic
        for m in catalog.matching(
            [condition("c1", t.ICD10CM, "E11.9"), condition("c2", t.ICD10CM, "M10.9")]
        )
    }
    assert found["diabetes"].title == "Diabetes (our clinic)"
    assert [p.text for p in found["gout"].prompts] == ["Any flares since we spoke?"]
    assert "asthma" not in topics(condition("c3", t.ICD10CM, "J45.909"), catalog=catalog)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("topics: [\n  {id: x,\n", "not valid YAML/JSON (line"),
        ("- just a list\n", "must hold a mapping"),
        ({"topics": [{"id": "x", "title": "X", "match": {}}]}, "matches nothing"),
        ({"topics": [{"id": "x", "match": {"icd10cm": ["E11"]}}]}, "has no title"),
        ({"topics": [HTTP_SOURCE]}, "topics.0.prompts.0.source.url"),
        ({"topics": [{"id": "x", "title": "X", "match": {"snomed": ["E11"]}}]}, "SNOMED CT"),
        ({"topics": [{"id": "x", "title": "X", "match": {"icd10cm": ["11"]}}]}, "ICD-10-CM"),
        ({"topcis": []}, "topcis"),
        (
            {"topics": [{"id": "x", "title": "X", "match": {"all_patients": True}}] * 2},
            "given twice",
        ),
    ],
)
def test_a_bad_file_is_a_config_error_saying_how_to_fix_it(
    tmp_path: Path, content: Any, says: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as raised:
        load_catalog(path)
    message = str(raised.value)
    assert says in message
    assert "docs/talking-points.md" in message and str(path) in message


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_catalog(tmp_path / "nope.yaml")


def test_the_settings_check_the_file_at_start(tmp_path: Path) -> None:
    bad = write(tmp_path, {"topics": [{"id": "Bad Id", "title": "X"}]})
    with pytest.raises(ConfigError) as raised:
        load_settings(need_fhir=False, kafka_bootstrap="kafka:9092", talking_points_file=bad)
    assert "invalid settings" in str(raised.value) and "talking points" in str(raised.value)
    good = write(tmp_path, {"topics": []}, "empty.yaml")
    settings = load_settings(
        need_fhir=False, kafka_bootstrap="kafka:9092", talking_points_file=good
    )
    assert settings.talking_points_file == good
