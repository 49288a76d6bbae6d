"""Scoring a QuestionnaireResponse as its instrument defines: PHQ-9 / GAD-7 totals and bands,
the Hunger Vital Sign, the AHC HRSN needs and safety score, recognition of the instrument and its
items, and malformed answers."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire

import carecoord
from carecoord.caremodel.instruments import (
    AHC_HRSN,
    CHECK_IN,
    GAD7,
    HVS,
    INSTRUMENTS,
    PHQ9,
    questionnaires,
    recognise,
    score_response,
)
from carecoord.caremodel.instruments import scoring as s
from carecoord.errors import MalformedAssessment

LOINC = "http://loinc.org"
FREQ = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]  # 0..3
PHQ9_ITEMS = [
    i.code for i in INSTRUMENTS[PHQ9].items if i.answers and i.answers[0].score is not None
]
GAD7_ITEMS = [
    i.code for i in INSTRUMENTS[GAD7].items if i.answers and i.answers[0].score is not None
]


def answer(code: str, system: str | None = LOINC) -> dict[str, Any]:
    coding = {"code": code} if system is None else {"system": system, "code": code}
    return {"valueCoding": coding}


def response(canonical: str, answers: dict[str, list[str]], slash: bool = True) -> dict[str, Any]:
    items = [
        {"linkId": f"/{code}" if slash else code, "answer": [answer(c) for c in codes]}
        for code, codes in answers.items()
    ]
    return {"resourceType": "QuestionnaireResponse", "questionnaire": canonical, "item": items}


def scores_to_answers(items: list[str], scores: list[int], instrument: str) -> dict[str, list[str]]:
    out = {}
    for code, score in zip(items, scores, strict=True):
        item = INSTRUMENTS[instrument].item(code)
        assert item is not None
        out[code] = [next(a.code for a in item.answers if a.score == score)]
    return out


def phq9(scores: list[int], **kw: Any) -> dict[str, Any]:
    return response(f"http://loinc.org/q/{PHQ9}", scores_to_answers(PHQ9_ITEMS, scores, PHQ9), **kw)


def total_of(items: int, total: int) -> list[int]:
    """Item scores (0-3) summing to `total`, item 9 (the last PHQ-9 item) left at 0."""
    scores = [0] * items
    left = total
    for i in range(items - 1):
        scores[i] = min(3, left)
        left -= scores[i]
    assert left == 0
    return scores


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"),
        (14, "moderate"), (15, "moderately severe"), (19, "moderately severe"), (20, "severe"),
        (24, "severe"),
    ],
)  # fmt: skip
def test_phq9_total_and_band_at_every_boundary(total: int, band: str) -> None:
    assessment = score_response(phq9(total_of(9, total)))
    assert assessment is not None
    assert (assessment.total, assessment.band) == (total, band)
    (finding,) = [f for f in assessment.findings if f.code == "44261-6"]
    assert (finding.value, finding.band) == (total, band)


def test_phq9_maximum_is_27_severe() -> None:
    assessment = score_response(phq9([3] * 9))
    assert assessment is not None
    assert (assessment.total, assessment.band, assessment.item_score("44260-8")) == (
        27,
        "severe",
        3,
    )


@pytest.mark.parametrize(
    ("total", "band"),
    [(0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"),
     (14, "moderate"), (15, "severe"), (21, "severe")],
)  # fmt: skip
def test_gad7_total_and_band_at_every_boundary(total: int, band: str) -> None:
    scores = [min(3, max(0, total - 3 * i)) for i in range(7)]
    qr = response(f"http://loinc.org/q/{GAD7}", scores_to_answers(GAD7_ITEMS, scores, GAD7))
    assessment = score_response(qr)
    assert assessment is not None
    assert (assessment.total, assessment.band) == (total, band)
    assert [f.value for f in assessment.findings if f.code == "70274-6"] == [total]


def test_gad7_item_2_scores_more_days_than_not_as_2() -> None:
    answers = {code: ["LA6568-5"] for code in GAD7_ITEMS}
    answers["68509-9"] = ["LA18938-3"]  # LOINC's "More days than not" for this item
    assessment = score_response(response(f"http://loinc.org/q/{GAD7}", answers))
    assert assessment is not None and assessment.total == 2


def test_an_incomplete_phq9_has_no_total_but_item_9_counts() -> None:
    answers = scores_to_answers(PHQ9_ITEMS, [0] * 8 + [2], PHQ9)
    del answers["44250-9"]
    assessment = score_response(response(f"http://loinc.org/q/{PHQ9}", answers))
    assert assessment is not None
    assert assessment.total is None
    assert assessment.item_score("44260-8") == 2
    assert not any(f.code == "44261-6" for f in assessment.findings)


def test_items_match_with_or_without_a_leading_slash_and_nested_in_groups() -> None:
    flat = score_response(phq9([1] * 9, slash=False))
    slashed = score_response(phq9([1] * 9, slash=True))
    grouped = phq9([1] * 9)
    grouped["item"] = [{"linkId": "group", "item": grouped["item"]}]
    nested = score_response(grouped)
    assert flat is not None and slashed is not None and nested is not None
    assert flat.total == slashed.total == nested.total == 9


def test_items_match_by_item_code_when_the_link_id_is_local() -> None:
    qr = phq9([2] * 9)
    for n, item in enumerate(qr["item"]):
        item["code"] = [{"system": LOINC, "code": item["linkId"].removeprefix("/")}]
        item["linkId"] = f"q{n}"
    assessment = score_response(qr)
    assert assessment is not None and assessment.total == 18


@pytest.mark.parametrize(
    "canonical",
    [
        "http://loinc.org/q/44249-1",
        "https://carecoord.dev/fhir/Questionnaire/44249-1",
        "https://carecoord.dev/fhir/Questionnaire/44249-1|1.0.0",
        "http://example.org/fhir/Questionnaire/44249-1",
    ],
)
def test_phq9_is_recognised_by_its_canonical(canonical: str) -> None:
    instrument = recognise(canonical)
    assert instrument is not None and instrument.key == PHQ9


@pytest.mark.parametrize(
    "canonical",
    [None, "", "http://example.org/Questionnaire/intake", "http://loinc.org/q/44249-10"],
)
def test_unknown_instruments_are_not_scored(canonical: str | None) -> None:
    qr = phq9([3] * 9)
    qr["questionnaire"] = canonical
    assert score_response(qr) is None


def test_an_answer_outside_the_list_is_malformed_and_names_the_item() -> None:
    qr = phq9([0] * 9)
    qr["item"][3]["answer"] = [answer("LA28397-0")]  # "Often true": not a PHQ-9 answer
    with pytest.raises(MalformedAssessment) as err:
        score_response(qr)
    assert err.value.item == PHQ9_ITEMS[3]
    assert PHQ9_ITEMS[3] in str(err.value)


def test_a_free_text_answer_is_malformed_and_never_in_the_message() -> None:
    qr = response(f"http://loinc.org/q/{HVS}", {})
    qr["item"] = [{"linkId": "/88122-7", "answer": [{"valueString": "we ran out in March"}]}]
    with pytest.raises(MalformedAssessment) as err:
        score_response(qr)
    assert err.value.item == "88122-7"
    assert "March" not in str(err.value)


def test_an_answer_from_another_system_is_malformed() -> None:
    qr = phq9([0] * 9)
    qr["item"][0]["answer"] = [answer("LA6568-5", system="http://example.org/codes")]
    with pytest.raises(MalformedAssessment):
        score_response(qr)


def test_two_answers_to_a_single_answer_item_are_malformed() -> None:
    qr = phq9([0] * 9)
    qr["item"][0]["answer"] = [answer("LA6568-5"), answer("LA6569-3")]
    with pytest.raises(MalformedAssessment) as err:
        score_response(qr)
    assert err.value.item == PHQ9_ITEMS[0]


@pytest.mark.parametrize(
    ("worried", "ran_out", "positive"),
    [
        ("LA28397-0", "LA28398-8", True),  # often true / never true
        ("LA28398-8", "LA6729-3", True),  # never / sometimes: either item
        ("LA6729-3", None, True),
        (None, "LA28397-0", True),
        ("LA28398-8", "LA28398-8", False),
        ("LA15775-2", "LA28398-8", False),  # don't know / refused
    ],
)
def test_hunger_vital_sign_is_positive_on_either_item(
    worried: str | None, ran_out: str | None, positive: bool
) -> None:
    answers = {k: [v] for k, v in (("88122-7", worried), ("88123-5", ran_out)) if v}
    assessment = score_response(response("http://loinc.org/q/88121-9", answers))
    assert assessment is not None
    assert assessment.positive is positive
    (risk,) = [f for f in assessment.findings if f.code == "88124-3"]
    assert risk.answer is not None
    assert risk.answer.code == ("LA19952-3" if positive else "LA19983-8")
    assert assessment.needs == (("food-insecurity",) if positive else ())


def test_an_unanswered_hunger_vital_sign_has_no_risk() -> None:
    assessment = score_response(response("http://loinc.org/q/88121-9", {}))
    assert assessment is not None
    assert assessment.positive is None and assessment.findings == ()


AHC_NEGATIVE = {
    "71802-3": ["LA31993-1"], "96778-6": ["LA9-3"], "88122-7": ["LA28398-8"],
    "88123-5": ["LA28398-8"], "93030-5": ["LA32-8"], "96779-4": ["LA32-8"],
    "95618-5": ["LA6270-8"], "95617-7": ["LA6270-8"], "95616-9": ["LA6270-8"],
    "95615-1": ["LA6270-8"],
}  # fmt: skip


def ahc(**changes: list[str]) -> s.Assessment:
    answers = {**AHC_NEGATIVE, **{k.replace("_", "-"): v for k, v in changes.items()}}
    assessment = score_response(response(f"http://loinc.org/q/{AHC_HRSN}", answers))
    assert assessment is not None
    return assessment


def test_ahc_all_negative() -> None:
    assessment = ahc()
    assert assessment.positive is False and assessment.needs == ()
    assert assessment.safety_total == 4


@pytest.mark.parametrize(
    ("item", "code", "need"),
    [
        ("71802-3", "LA31994-9", "housing-instability"),
        ("71802-3", "LA31995-6", "homelessness"),
        ("96778-6", "LA28580-1", "inadequate-housing"),
        ("88122-7", "LA6729-3", "food-insecurity"),
        ("88123-5", "LA28397-0", "food-insecurity"),
        ("93030-5", "LA33-6", "transportation-insecurity"),
        ("96779-4", "LA33-6", "utility-insecurity"),
        ("96779-4", "LA32002-0", "utility-insecurity"),
    ],
)
def test_ahc_positive_answers_name_their_need(item: str, code: str, need: str) -> None:
    assessment = ahc(**{item.replace("-", "_"): [code]})
    assert assessment.positive is True
    assert assessment.needs == (need,)
    (finding,) = [f for f in assessment.findings if f.code == item]
    assert finding.positive


def test_ahc_housing_problems_may_have_several_answers() -> None:
    assessment = ahc(**{"96778-6": ["LA31996-4", "LA31998-0"]})
    assert [f.answer.code for f in assessment.findings if f.code == "96778-6" and f.answer] == [
        "LA31996-4",
        "LA31998-0",
    ]
    assert assessment.needs == ("inadequate-housing",)


@pytest.mark.parametrize(("scores", "unsafe"), [([3, 3, 2, 2], False), ([3, 3, 3, 2], True)])
def test_ahc_safety_is_positive_at_11(scores: list[int], unsafe: bool) -> None:
    hits = ["LA6270-8", "LA10066-1", "LA10082-8", "LA16644-9", "LA6482-9"]  # 1..5
    changes = {code: [hits[n - 1]] for code, n in zip(s.HITS_ITEMS, scores, strict=True)}
    assessment = ahc(**changes)
    assert assessment.safety_total == sum(scores)
    assert ("unsafe" in assessment.flags) is unsafe
    assert assessment.positive is unsafe


def test_ahc_safety_needs_all_four_items() -> None:
    answers = {k: v for k, v in AHC_NEGATIVE.items() if k != "95615-1"}
    assessment = score_response(response(f"http://loinc.org/q/{AHC_HRSN}", answers))
    assert assessment is not None and assessment.safety_total is None


@pytest.mark.parametrize(
    ("code", "flagged"), [("not-as-prescribed", True), ("as-prescribed", False)]
)
def test_check_in_flags_medications_not_taken_as_prescribed(code: str, flagged: bool) -> None:
    qr = {
        "questionnaire": "https://carecoord.dev/fhir/Questionnaire/carecoord-check-in",
        "item": [
            {
                "linkId": "medication-adherence",
                "answer": [answer(code, "https://carecoord.dev/fhir/CodeSystem/check-in")],
            }
        ],
    }
    assessment = score_response(qr)
    assert assessment is not None and assessment.instrument.key == CHECK_IN
    assert ("medication-not-as-prescribed" in assessment.flags) is flagged


def test_an_answer_without_a_system_matches_by_code() -> None:
    qr = phq9([1] * 9)
    for item in qr["item"]:
        item["answer"] = [answer("LA6569-3", system=None)]
    assessment = score_response(qr)
    assert assessment is not None and assessment.total == 9


@pytest.mark.parametrize("key", [PHQ9, GAD7, HVS, AHC_HRSN, CHECK_IN])
def test_the_shipped_questionnaires_are_valid_r4_and_end_in_their_key(key: str) -> None:
    raw = questionnaires()[key]
    Questionnaire.model_validate(raw)
    assert raw["url"] == f"https://carecoord.dev/fhir/Questionnaire/{key}"
    assert raw["version"]
    if key != CHECK_IN:
        assert raw["code"][0] == {"system": LOINC, "code": key, "display": raw["title"]}


def test_every_code_the_rules_use_is_in_the_published_answer_lists() -> None:
    ahc_items = {i.code: {a.code for a in i.answers} for i in INSTRUMENTS[AHC_HRSN].items}
    for item, positives in s._AHC_POSITIVE.items():
        assert set(positives) <= ahc_items[item], item
    hvs = {a.code for i in INSTRUMENTS[HVS].items for a in i.answers}
    assert s._FOOD_POSITIVE | {s.HVS_AT_RISK.code, s.HVS_NO_RISK.code} <= hvs


def test_the_public_api_scores_a_response() -> None:
    assessment = carecoord.score_questionnaire_response(phq9([1] * 9))
    assert assessment is not None and assessment.total == 9
