"""carecoord.assessment.completed through the real processor: Observations on the server, once per
response version; the clinical question and the SDOH referral it routes; unknown instruments
ignored; malformed responses dead-lettered naming the item."""

from __future__ import annotations

from typing import Any

import pytest

from carecoord.caremodel import profiles
from carecoord.caremodel.instruments import INSTRUMENTS, PHQ9
from carecoord.catalog import ClinicalQuestion, SdohNeedIdentified
from carecoord.errors import MalformedAssessment
from carecoord.handlers.assessments.handler import handlers
from carecoord.handlers.assessments.observations import SDOHCC_SCREENING_RESPONSE
from carecoord.handlers.clinical.routing import handlers as clinical
from carecoord.testing import InMemoryFhir, events, run_events

LOINC = "http://loinc.org"
PHQ9_ITEMS = [
    i.code for i in INSTRUMENTS[PHQ9].items if i.answers and i.answers[0].score is not None
]
SCORE = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]


def fhir_with(qr: dict[str, Any], *, postal: str | None = "62701") -> InMemoryFhir:
    fhir = InMemoryFhir()
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "p1"}
    if postal:
        patient["address"] = [{"postalCode": postal}]
    fhir.put(patient)
    fhir.put({"resourceType": "QuestionnaireResponse", "id": "qr1", **qr})
    return fhir


def qr(canonical: str, answers: dict[str, list[str]], **extra: Any) -> dict[str, Any]:
    items = [
        {
            "linkId": f"/{code}",
            "answer": [{"valueCoding": {"system": LOINC, "code": c}} for c in cs],
        }
        for code, cs in answers.items()
    ]
    return {
        "questionnaire": canonical,
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "authored": "2030-01-01T09:00:00Z",
        "item": items,
        **extra,
    }


def phq9(scores: list[int]) -> dict[str, Any]:
    answers = {code: [SCORE[n]] for code, n in zip(PHQ9_ITEMS, scores, strict=True)}
    return qr("http://loinc.org/q/44249-1", answers)


def completed(id: str = "e1") -> Any:
    return events.assessment_completed("p1", "QuestionnaireResponse/qr1", id=id)


def questions(run: Any) -> list[ClinicalQuestion]:
    return [
        ClinicalQuestion.model_validate(e.data)
        for e in run.emitted
        if e.type == ClinicalQuestion.event_type
    ]


def test_phq9_writes_its_observations_derived_from_the_response() -> None:
    fhir = fhir_with(phq9([1, 1, 1, 1, 1, 1, 1, 1, 0]))
    run = run_events(handlers, completed(), fhir=fhir)
    assert run.dead_letters == []
    obs = fhir.all("Observation")
    assert len(obs) == 10  # nine items and the total
    (total,) = [o for o in obs if o["code"]["coding"][0]["code"] == "44261-6"]
    assert total["valueQuantity"]["value"] == 8
    assert total["interpretation"][0]["text"] == "mild"
    assert total["subject"]["reference"] == "Patient/p1"
    assert all(o["derivedFrom"] == [{"reference": "QuestionnaireResponse/qr1"}] for o in obs)
    assert total["effectiveDateTime"].startswith("2030-01-01T09:00:00")
    assert questions(run) == []  # total 8, item 9 at 0: nothing to route
    assert run.emitted_types == ["carecoord.assessment.scored"]


def test_item_9_above_0_is_an_urgent_question_whatever_the_total() -> None:
    fhir = fhir_with(phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]))
    (question,) = questions(run_events(handlers, completed(), fhir=fhir))
    assert question.urgency == "urgent"
    assert "44260-8" in question.question and "QuestionnaireResponse/qr1" in question.question


def test_the_provider_answers_whoever_administered_the_instrument() -> None:
    # QuestionnaireResponse.author, when a Practitioner, is who the answer goes back to (the
    # clinical loop relays it); without one, the question is carecoord's own.
    by_cm = {**phq9([0] * 8 + [1]), "author": {"reference": "Practitioner/cm7"}}
    (question,) = questions(run_events(handlers, completed(), fhir=fhir_with(by_cm)))
    assert question.raised_by == "Practitioner/cm7"
    by_device = {**phq9([0] * 8 + [1]), "author": {"reference": "Device/kiosk"}}
    (question,) = questions(run_events(handlers, completed(), fhir=fhir_with(by_device)))
    assert question.raised_by == "carecoord-assessments"


def test_a_total_of_10_is_a_routine_question_and_9_is_none() -> None:
    ten = questions(run_events(handlers, completed(), fhir=fhir_with(phq9([2] * 5 + [0] * 4))))
    assert [q.urgency for q in ten] == ["routine"]
    nine = questions(run_events(handlers, completed(), fhir=fhir_with(phq9([3] * 3 + [0] * 6))))
    assert nine == []


def test_the_cut_offs_are_configurable() -> None:
    fhir = fhir_with(phq9([2] * 5 + [0] * 3 + [1]))
    config = {"assessments": {"phq9_review_at": 12, "phq9_item9_urgent_above": 1}}
    assert questions(run_events(handlers, completed(), fhir=fhir, config=config)) == []


def test_gad7_of_10_is_a_routine_question() -> None:
    codes = [i.code for i in INSTRUMENTS["69737-5"].items if i.type == "choice"]
    answers = {
        c: [s]
        for c, s in zip(codes, ["LA6571-9"] * 3 + ["LA6569-3"] + ["LA6568-5"] * 3, strict=True)
    }
    fhir = fhir_with(qr("https://carecoord.dev/fhir/Questionnaire/69737-5", answers))
    (question,) = questions(run_events(handlers, completed(), fhir=fhir))
    assert question.urgency == "routine" and "total 10" in question.question


def test_a_redelivery_writes_and_routes_nothing_new() -> None:
    fhir = fhir_with(phq9([3] * 9))
    first = run_events(handlers, completed("e1"), fhir=fhir)
    again = run_events(handlers, completed("e1"), completed("e2"), fhir=fhir)
    assert len(fhir.all("Observation")) == 10
    # the same follow-ups, by id, however the response version arrives again
    ids = {e.type: e.id for e in first.emitted}
    assert all(ids[e.type] == e.id for e in again.emitted)


def test_a_new_response_version_is_scored_again() -> None:
    fhir = fhir_with(phq9([0] * 9))
    run_events(handlers, completed("e1"), fhir=fhir)
    fhir.put({"resourceType": "QuestionnaireResponse", "id": "qr1", **phq9([1] * 9)})
    run = run_events(handlers, completed("e2"), fhir=fhir)
    assert len(fhir.all("Observation")) == 20
    assert run.emitted[-1].data["response_version"] == "2"


def test_hunger_vital_sign_positive_starts_a_food_referral_held_for_consent() -> None:
    fhir = fhir_with(qr("http://loinc.org/q/88121-9", {"88123-5": ["LA6729-3"]}))
    run = run_events(handlers, completed(), fhir=fhir)
    needs = [
        SdohNeedIdentified.model_validate(e.data)
        for e in run.emitted
        if e.type == SdohNeedIdentified.event_type
    ]
    assert [(n.domain, n.postal_code, n.consent_to_contact) for n in needs] == [
        ("food-insecurity", "62701", False)
    ]
    assert needs[0].evidence == "QuestionnaireResponse/qr1"
    risk = [o for o in fhir.all("Observation") if o["code"]["coding"][0]["code"] == "88124-3"]
    assert risk[0]["valueCodeableConcept"]["coding"][0]["code"] == "LA19952-3"
    assert risk[0]["interpretation"][0]["coding"][0]["code"] == "POS"
    assert risk[0]["meta"]["profile"] == [f"{SDOHCC_SCREENING_RESPONSE}|3.0.0"]  # STU 3 claim
    categories = [c["coding"][0]["code"] for c in risk[0]["category"]]
    assert categories == ["survey", "sdoh", "food-insecurity"]


def test_a_negative_screen_refers_nothing() -> None:
    fhir = fhir_with(qr("http://loinc.org/q/88121-9", {"88122-7": ["LA28398-8"]}))
    run = run_events(handlers, completed(), fhir=fhir)
    assert SdohNeedIdentified.event_type not in run.emitted_types


def test_no_referral_without_a_postal_code() -> None:
    fhir = fhir_with(qr("http://loinc.org/q/88121-9", {"88122-7": ["LA28397-0"]}), postal=None)
    run = run_events(handlers, completed(), fhir=fhir)
    assert SdohNeedIdentified.event_type not in run.emitted_types
    assert run.emitted[-1].data["routed"] == []


def test_ahc_needs_each_start_a_referral_and_consent_can_be_configured() -> None:
    answers = {"71802-3": ["LA31995-6"], "93030-5": ["LA33-6"], "96778-6": ["LA28580-1"]}
    fhir = fhir_with(qr("http://loinc.org/q/96777-8", answers))
    config = {"assessments": {"sdoh_consent_to_contact": True}}
    run = run_events(handlers, completed(), fhir=fhir, config=config)
    needs = [e.data for e in run.emitted if e.type == SdohNeedIdentified.event_type]
    # inadequate housing has no carecoord referral domain: its Observation only
    assert [(n["domain"], n["consent_to_contact"]) for n in needs] == [
        ("homelessness", True),
        ("transportation-insecurity", True),
    ]
    assert len({e.id for e in run.emitted}) == len(run.emitted)


def test_check_in_medication_not_as_prescribed_asks_the_provider() -> None:
    item = {
        "linkId": "medication-adherence",
        "answer": [
            {
                "valueCoding": {
                    "system": "https://carecoord.dev/fhir/CodeSystem/check-in",
                    "code": "not-as-prescribed",
                }
            }
        ],
    }
    body = qr("https://carecoord.dev/fhir/Questionnaire/carecoord-check-in", {})
    body["item"] = [item]
    (question,) = questions(run_events(handlers, completed(), fhir=fhir_with(body)))
    assert question.urgency == "routine" and "medications" in question.question


def test_an_unknown_instrument_is_ignored_not_dead_lettered() -> None:
    fhir = fhir_with(qr("http://example.org/Questionnaire/intake", {"44260-8": ["LA6571-9"]}))
    run = run_events(handlers, completed(), fhir=fhir)
    assert run.dead_letters == []
    assert fhir.all("Observation") == []
    (ignored,) = run.emitted
    assert ignored.type == "carecoord.assessment.ignored"
    assert ignored.data == {
        "questionnaire_response": "QuestionnaireResponse/qr1",
        "reason": "unknown-instrument",
    }


def test_an_in_progress_response_is_ignored() -> None:
    fhir = fhir_with({**phq9([3] * 9), "status": "in-progress"})
    run = run_events(handlers, completed(), fhir=fhir)
    assert fhir.all("Observation") == []
    assert run.emitted[0].data["reason"] == "not-completed"


def test_a_malformed_answer_is_a_dead_letter_naming_the_item() -> None:
    body = phq9([0] * 9)
    body["item"][2]["answer"] = [{"valueCoding": {"system": LOINC, "code": "LA33-6"}}]
    fhir = fhir_with(body)
    run = run_events(handlers, completed(), fhir=fhir)
    ((_, error),) = run.dead_letters
    assert isinstance(error, MalformedAssessment)
    assert error.item == PHQ9_ITEMS[2] and PHQ9_ITEMS[2] in str(error)
    assert fhir.all("Observation") == []


@pytest.mark.parametrize("subject", ["Patient/other", None])
def test_a_response_about_another_patient_is_a_dead_letter(subject: str | None) -> None:
    body = phq9([0] * 9)
    body["subject"] = {"reference": subject} if subject else None
    body = {k: v for k, v in body.items() if v is not None}
    run = run_events(handlers, completed(), fhir=fhir_with(body))
    assert len(run.dead_letters) == 1


def test_a_missing_response_is_a_dead_letter() -> None:
    fhir = InMemoryFhir()
    run = run_events(handlers, completed(), fhir=fhir)
    assert len(run.dead_letters) == 1


def test_the_urgent_question_becomes_the_providers_stat_task() -> None:
    fhir = fhir_with(phq9([0] * 8 + [2]))
    run = run_events(handlers, completed(), fhir=fhir)
    (emit,) = [e for e in run.emitted if e.type == ClinicalQuestion.event_type]
    follow_up = events.event(emit.type, "p1", emit.data, id=emit.id)
    config = {"clinical-routing": {"provider": "Practitioner/dr-1"}}
    routed = run_events(clinical, follow_up, fhir=fhir, config=config)
    assert routed.dead_letters == []
    (task,) = fhir.tasks("clinical-review")
    assert task["priority"] == "stat" and task["owner"]["reference"] == "Practitioner/dr-1"


@pytest.mark.parametrize(
    ("canonical", "answers"),
    [
        ("http://loinc.org/q/44249-1", {c: ["LA6569-3"] for c in PHQ9_ITEMS}),
        ("http://loinc.org/q/88121-9", {"88122-7": ["LA28397-0"], "88123-5": ["LA28398-8"]}),
        (
            "http://loinc.org/q/96777-8",
            {"71802-3": ["LA31994-9"], "96778-6": ["LA31996-4", "LA28580-1"]}
            | {c: ["LA10082-8"] for c in ("95618-5", "95617-7", "95616-9", "95615-1")},
        ),
    ],
)
def test_the_observations_conform_to_the_profiles_they_claim(
    canonical: str, answers: dict[str, list[str]]
) -> None:
    fhir = fhir_with(qr(canonical, answers))
    run_events(handlers, completed(), fhir=fhir)
    observations = fhir.all("Observation")
    assert observations
    for obs in observations:
        assert profiles.claimed(obs), obs["code"]
        assert profiles.check(obs) == [], obs["code"]


HITS = {c: ["LA6482-9"] for c in ("95618-5", "95617-7", "95616-9", "95615-1")}  # 4 x 5 = 20


@pytest.mark.parametrize(("setting", "urgencies"), [(None, []), ("urgent", ["urgent"])])
def test_an_unsafe_ahc_screen_asks_the_provider_as_configured(
    setting: str | None, urgencies: list[str]
) -> None:
    fhir = fhir_with(qr("http://loinc.org/q/96777-8", HITS))
    default = questions(run_events(handlers, completed(), fhir=fhir))
    assert [q.urgency for q in default] == ["routine"] and "safety total 20" in default[0].question
    config = {"assessments": {"unsafe_question": setting}}
    fhir = fhir_with(qr("http://loinc.org/q/96777-8", HITS))
    run = run_events(handlers, completed(), fhir=fhir, config=config)
    assert [q.urgency for q in questions(run)] == urgencies


def test_one_question_per_response_urgent_when_any_reason_is() -> None:
    fhir = fhir_with(phq9([3] * 9))  # total 27 and item 9 at 3
    (question,) = questions(run_events(handlers, completed(), fhir=fhir))
    assert question.urgency == "urgent"
    assert "item 9" in question.question and "total 27" in question.question
    # the text names rules and ids, never what the patient answered
    for item in INSTRUMENTS[PHQ9].items:
        assert item.text not in question.question
        assert all(a.display not in question.question for a in item.answers)
