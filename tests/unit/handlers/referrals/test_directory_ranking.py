"""Referral ranking read straight off HealthcareService resources: which services are candidates
for a need and in which order a care manager's patient is offered them."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.patient import Patient

from carecoord.caremodel.terminology import SDOHCC_TEMPORARY_CODES
from carecoord.directory.hsds import AGE_RANGE_EXTENSION, ELIGIBILITY_SYSTEM, LANGUAGE_SYSTEM
from carecoord.handlers.referrals.ranking import (
    Candidate,
    ReferralCriteria,
    ServiceFacts,
    facts_of,
    rank,
    score,
)

FOOD = "food-insecurity"


def service(
    sid: str = "s1",
    *,
    name: str | None = "Pantry",
    active: bool | None = True,
    org: str | None = "Organization/o1",
    domains: tuple[str, ...] = (FOOD,),
    postal: tuple[str, ...] = (),
    languages: tuple[tuple[str | None, str], ...] = (),
    codes: tuple[str, ...] = (),
    ages: dict[str, float] | None = None,
    **extra: Any,
) -> HealthcareService:
    data: dict[str, Any] = {"resourceType": "HealthcareService", "id": sid}
    if name is not None:
        data["name"] = name
    if active is not None:
        data["active"] = active
    if org is not None:
        data["providedBy"] = {"reference": org}
    if domains:
        data["category"] = [
            {"coding": [{"system": SDOHCC_TEMPORARY_CODES, "code": d}]} for d in domains
        ]
    if postal:
        data["contained"] = [
            {"resourceType": "Location", "id": f"a{i}", "address": {"postalCode": p}}
            for i, p in enumerate(postal)
        ]
        data["coverageArea"] = [{"reference": f"#a{i}"} for i in range(len(postal))]
    if languages:
        data["communication"] = [
            {"coding": [{"code": code} | ({"system": system} if system else {})]}
            for system, code in languages
        ]
    eligibility: list[dict[str, Any]] = [
        {"code": {"coding": [{"system": ELIGIBILITY_SYSTEM, "code": c}]}} for c in codes
    ]
    if ages is not None:
        range_ = {k: {"value": v, "unit": "a"} for k, v in ages.items()}
        eligibility.append({"extension": [{"url": AGE_RANGE_EXTENSION, "valueRange": range_}]})
    if eligibility:
        data["eligibility"] = eligibility
    data.update(extra)
    return HealthcareService.model_validate(data)


def facts(**kw: Any) -> ServiceFacts:
    return facts_of(service(**kw))


def need(**kw: Any) -> ReferralCriteria:
    return ReferralCriteria(**{"domain": FOOD, "postal_code": "62701", **kw})


# -- what is read off a HealthcareService -------------------------------------------------------


def test_facts_of_a_fully_described_service() -> None:
    f = facts(
        sid="pantry",
        name="Weekly pantry",
        domains=(FOOD, "housing-instability"),
        postal=("62701-1234", " 62 702 "),
        languages=((LANGUAGE_SYSTEM, "es-MX"), (None, "EN")),
        codes=("seniors", "veterans"),
        ages={"low": 60, "high": 99},
    )
    assert f == ServiceFacts(
        reference="HealthcareService/pantry",
        organization="Organization/o1",
        name="Weekly pantry",
        active=True,
        domains=frozenset({FOOD, "housing-instability"}),
        postal_codes=frozenset({"62701", "62702"}),
        languages=frozenset({"es", "en"}),
        eligibility_codes=frozenset({"seniors", "veterans"}),
        min_age=60.0,
        max_age=99.0,
    )


def test_facts_of_a_bare_service() -> None:
    f = facts(name=None, active=None, org=None, domains=())
    assert f == ServiceFacts(
        reference="HealthcareService/s1",
        organization=None,
        name="",
        active=True,  # FHIR: active absent is not "inactive"
        domains=frozenset(),
        postal_codes=frozenset(),
        languages=frozenset(),
        eligibility_codes=frozenset(),
        min_age=None,
        max_age=None,
    )
    assert facts(active=False).active is False


def test_only_the_codings_of_the_expected_systems_count() -> None:
    f = facts(
        domains=(),
        category=[
            {"coding": [{"system": "http://example.org/other", "code": "food"}]},
            {"coding": [{"system": SDOHCC_TEMPORARY_CODES, "code": FOOD}]},
            {"coding": [{"system": SDOHCC_TEMPORARY_CODES, "display": "no code"}]},
            {"text": "no coding at all"},
        ],
        communication=[
            {"coding": [{"system": "http://example.org/langs", "code": "fr"}]},
            {"coding": [{"system": LANGUAGE_SYSTEM, "display": "no code"}]},
            {"coding": [{"system": LANGUAGE_SYSTEM, "code": "vi"}]},
            {"text": "Spanish"},
        ],
        eligibility=[
            {"code": {"coding": [{"system": "http://example.org/elig", "code": "low-income"}]}},
            {"code": {"coding": [{"system": ELIGIBILITY_SYSTEM, "display": "no code"}]}},
            {"code": {"coding": [{"system": ELIGIBILITY_SYSTEM, "code": "families"}]}},
            {"code": {"text": "free text only"}},
            {"comment": "free text eligibility does not restrict"},
        ],
    )
    assert f.domains == {FOOD}
    assert f.languages == {"vi"}
    assert f.eligibility_codes == {"families"}
    assert (f.min_age, f.max_age) == (None, None)


def test_coverage_is_read_from_the_contained_areas_the_service_points_to() -> None:
    f = facts(
        contained=[
            {"resourceType": "Location", "id": "a", "address": {"postalCode": "62701"}},
            {"resourceType": "Location", "id": "b", "address": {"city": "Springfield"}},
            {"resourceType": "Location", "id": "c"},
            {"resourceType": "Location", "id": "d", "address": {"postalCode": "99999"}},
        ],
        coverageArea=[
            {"reference": "#a"},
            {"reference": "#b"},
            {"reference": "#c"},
            {"reference": "#missing"},
            {"display": "somewhere"},
        ],
    )
    assert f.postal_codes == {"62701"}  # d is contained but not a coverage area


def test_an_age_range_may_be_open_at_either_end() -> None:
    assert (facts(ages={"low": 18}).min_age, facts(ages={"low": 18}).max_age) == (18.0, None)
    assert (facts(ages={"high": 17}).min_age, facts(ages={"high": 17}).max_age) == (None, 17.0)
    other = facts(
        eligibility=[
            {
                "extension": [
                    {
                        "url": "http://example.org/other-range",
                        "valueRange": {"low": {"value": 5}, "high": {"value": 6}},
                    },
                    {"url": AGE_RANGE_EXTENSION, "valueString": "adults"},
                    {"url": AGE_RANGE_EXTENSION, "valueRange": {"low": {"unit": "a"}}},
                ]
            }
        ]
    )
    assert (other.min_age, other.max_age) == (None, None)


# -- who is a candidate, and how good a match -------------------------------------------------


def test_a_plain_matching_service_is_a_candidate_with_unknowns_in_the_middle() -> None:
    assert score(facts(), need()) == (2, 1, 1)


@pytest.mark.parametrize(
    "kw",
    [{"active": False}, {"domains": ("housing-instability",)}, {"org": None}],
    ids=["inactive", "other-domain", "no-organisation"],
)
def test_not_a_candidate(kw: dict[str, Any]) -> None:
    assert score(facts(**kw), need()) is None
    assert rank([service(**kw)], need()) == []


def test_coverage_listed_beats_undeclared_and_elsewhere_is_excluded() -> None:
    covered = facts(postal=("62701", "62702"))
    assert score(covered, need()) == (2, 2, 1)
    assert score(covered, need(postal_code=" 62701-4321 ")) == (2, 2, 1)  # ZIP+4, spaces
    assert score(covered, need(postal_code="62703")) is None
    assert score(facts(), need(postal_code="62703")) == (2, 1, 1)


@pytest.mark.parametrize(
    ("ages", "age", "expected"),
    [
        ({"low": 60}, 59, None),
        ({"low": 60}, 60, (2, 1, 1)),
        ({"low": 60}, 80, (2, 1, 1)),
        ({"high": 17}, 17, (2, 1, 1)),
        ({"high": 17}, 18, None),
        ({"low": 5, "high": 17}, 4, None),
        ({"low": 5, "high": 17}, 11, (2, 1, 1)),
        ({"low": 60}, None, (1, 1, 1)),
        ({"high": 17}, None, (1, 1, 1)),
        (None, None, (2, 1, 1)),
        (None, 3, (2, 1, 1)),
    ],
)
def test_an_age_range_excludes_patients_outside_it_and_is_uncertain_without_an_age(
    ages: dict[str, float] | None, age: int | None, expected: tuple[int, int, int] | None
) -> None:
    assert score(facts(ages=ages), need(age=age)) == expected


def test_coded_eligibility_certain_when_met_excluding_when_others_are_known() -> None:
    seniors = facts(codes=("seniors", "veterans"))
    assert score(seniors, need(eligibility=frozenset({"veterans"}))) == (2, 1, 1)
    assert score(seniors, need(eligibility=frozenset({"families"}))) is None
    assert score(seniors, need()) == (1, 1, 1)  # nothing known about the patient
    assert score(facts(), need(eligibility=frozenset({"families"}))) == (2, 1, 1)
    # Meeting the code does not make an unknown age certain.
    aged = facts(codes=("seniors",), ages={"low": 60})
    assert score(aged, need(eligibility=frozenset({"seniors"}))) == (1, 1, 1)
    assert score(aged, need(eligibility=frozenset({"seniors"}), age=70)) == (2, 1, 1)


def test_language_spoken_beats_undeclared_beats_other_languages() -> None:
    spanish = facts(languages=((LANGUAGE_SYSTEM, "es"),))
    assert score(spanish, need(language="es-MX")) == (2, 1, 2)
    assert score(spanish, need(language="Spanish")) == (2, 1, 2)
    assert score(spanish, need(language="vi")) == (2, 1, 0)
    assert score(spanish, need()) == (2, 1, 1)
    assert score(facts(), need(language="vi")) == (2, 1, 1)


# -- the order candidates are offered in -------------------------------------------------------


def test_rank_orders_by_eligibility_then_coverage_then_language_then_name_then_id() -> None:
    services = [
        service("z-other-lang", name="A", postal=("62701",), languages=((None, "vi"),)),
        service("uncertain", name="A", codes=("seniors",), postal=("62701",)),
        service("covered-es", name="Z", postal=("62701",), languages=((None, "es"),)),
        service("undeclared-es", name="A", languages=((None, "es"),)),
        service("covered-b", name="B", postal=("62701",)),
        service("covered-a2", name="A", postal=("62701",)),
        service("covered-a1", name="A", postal=("62701",)),
    ]
    ranked = rank(services, need(language="es"))
    assert [c.service.removeprefix("HealthcareService/") for c in ranked] == [
        "covered-es",  # certain, covered, speaks Spanish
        "covered-a1",  # certain, covered, no language declared: by name, then id
        "covered-a2",
        "covered-b",
        "z-other-lang",  # certain, covered, only another language
        "undeclared-es",  # certain, no coverage declared
        "uncertain",  # eligibility unknown comes last whatever else it offers
    ]
    assert ranked[0] == Candidate(
        service="HealthcareService/covered-es",
        organization="Organization/o1",
        name="Z",
        score=(2, 2, 2),
    )
    assert [c.score for c in ranked][-3:] == [(2, 2, 0), (2, 1, 2), (1, 2, 1)]


def test_rank_skips_tried_services_other_resources_and_services_without_an_id() -> None:
    nameless = service("n1", name=None)
    tried = service("tried", name="Already tried")
    anonymous = service("anon").model_copy(update={"id": None})
    patient = Patient.model_validate({"resourceType": "Patient", "id": "s2"})
    ranked = rank(
        [tried, patient, anonymous, nameless, service("s3", org="Organization/o3")],
        need(),
        exclude={"HealthcareService/tried"},
    )
    assert [(c.service, c.organization, c.name) for c in ranked] == [
        ("HealthcareService/n1", "Organization/o1", ""),
        ("HealthcareService/s3", "Organization/o3", "Pantry"),
    ]
    assert rank([tried], need()) != []
