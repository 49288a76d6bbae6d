"""The demo's screenings and check-ins: seeded (the same seed, the same answers), positive at the
rates the simulator cites, written as valid FHIR R4 QuestionnaireResponses in the shape the
assessments handler reads, each followed by `carecoord.assessment.completed` — and only when a
loaded handler takes that event."""

from __future__ import annotations

from collections import Counter

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from carecoord.demo import screens as sc
from carecoord.demo.runner import screening_handled
from carecoord.demo.screens import Screening
from carecoord.demo.sim import Scale, Simulator

PANEL_ITEMS = {
    sc.PHQ9: set(sc.PHQ9_ITEMS),
    sc.GAD7: set(sc.GAD7_ITEMS),
    sc.HVS: set(sc.HVS_ITEMS),
    sc.CHECK_IN: {sc.ADHERENCE_ITEM},
}


def _month(patients: int, seed: int = 7, days: int = 30, run: str = "r") -> Simulator:
    sim = Simulator(Scale(patients=patients, days=days, seed=seed, run=run))
    sim.screening = True
    for day in range(1, days + 1):
        plan = sim.day(day)
        sim.care_team(day, [])
        assert plan.screenings == [s for s in sim.screened if s.day == day]
    return sim


def _answers(sim: Simulator) -> list[tuple[str, str, tuple[tuple[str, tuple[str, str, str]], ...]]]:
    return [(s.id, s.instrument, s.answers) for s in sim.screened]


def test_the_same_seed_gives_the_same_screenings_and_answers() -> None:
    first = _answers(_month(80, seed=3))
    assert first and first == _answers(_month(80, seed=3))
    assert first != _answers(_month(80, seed=4))
    other_run = _answers(_month(80, seed=3, run="run-b"))
    assert repr(other_run).replace("run-b", "r") == repr(first)


def _share(screens: list[Screening]) -> float:
    return sum(s.positive for s in screens) / len(screens)


def test_positives_come_at_the_cited_rates() -> None:
    sim = _month(3000)
    by = {key: [s for s in sim.screened if s.instrument == key] for key in sc.LABELS}
    assert all(len(v) > 100 for v in by.values())
    bhi = {p.id for p in sim.patients if p.program == "BHI"}
    assert abs(_share(by[sc.HVS]) - 0.18) < 0.03
    phq_bhi = [s for s in by[sc.PHQ9] if s.patient in bhi]
    phq_other = [s for s in by[sc.PHQ9] if s.patient not in bhi]
    # positive: total >= 10, or item 9 above 0 (1.5 % of the low totals)
    assert abs(_share(phq_bhi) - (0.45 + 0.55 * 0.015)) < 0.06
    assert abs(_share(phq_other) - (0.14 + 0.86 * 0.015)) < 0.04
    assert abs(_share(by[sc.CHECK_IN]) - 0.2) < 0.04
    urgent = sum(s.urgent for s in by[sc.PHQ9]) / len(by[sc.PHQ9])
    assert 0.02 < urgent < 0.10  # NHANES: 3.5 % of respondents; more in a BHI-heavy group
    # every BHI patient reached is asked the PHQ-9; most patients the Hunger Vital Sign
    reached = {p.id for p in sim.patients if p.reached_day}
    assert {s.patient for s in phq_bhi} == reached & bhi
    assert 0.8 < len(by[sc.HVS]) / len(reached) < 0.9


def _score(screen: Screening) -> int:
    scores = {code: i for i, (_, code, _) in enumerate(sc.FREQUENCY)}
    scores[sc.GAD7_MORE_DAYS_THAN_NOT[1]] = 2
    return sum(scores[a[1]] for _, a in screen.answers)


def test_the_demos_own_scoring_follows_the_instruments_rules() -> None:
    for s in _month(400).screened:
        answers = {link: a[1] for link, a in s.answers}
        if s.instrument == sc.HVS:
            assert s.positive == (set(answers.values()) != {sc.NEVER[1]})
        elif s.instrument == sc.CHECK_IN:
            assert s.positive == (answers[sc.ADHERENCE_ITEM] == sc.NOT_AS_PRESCRIBED[1])
        else:
            item9 = s.instrument == sc.PHQ9 and answers[sc.PHQ9_ITEM9] != sc.NOT_AT_ALL[1]
            assert s.urgent == item9
            assert s.positive == (_score(s) >= 10 or item9)


def test_each_screening_is_a_valid_questionnaire_response_then_its_event() -> None:
    sim = Simulator(Scale(patients=60, days=12, run="r"))
    sim.screening = True
    seen = Counter[str]()
    for day in range(1, 13):
        plan = sim.day(day)
        events = {e.data["questionnaire_response"]: e for e in plan.events
                  if e.type == sc.ASSESSMENT_COMPLETED}  # fmt: skip
        assert set(events) == {s.reference for s in plan.screenings}
        for s in plan.screenings:
            seen[s.instrument] += 1
            resource = s.resource()
            QuestionnaireResponse.model_validate(resource)  # raises on an invalid one
            assert resource["status"] == "completed"
            assert resource["subject"] == {"reference": f"Patient/{s.patient}"}
            assert resource["authored"].startswith(f"2026-11-{day:02d}T")
            canonical = resource["questionnaire"]
            assert canonical.rsplit("/", 1)[-1] == s.instrument
            if s.instrument != sc.CHECK_IN:
                assert canonical == f"http://loinc.org/q/{s.instrument}"
            items = [i["linkId"] for i in resource["item"]]
            assert set(items) == PANEL_ITEMS[s.instrument] and len(items) == len(set(items))
            for item in resource["item"]:
                (answer,) = item["answer"]
                assert set(answer) == {"valueCoding"}
            event = events[s.reference]
            assert event.data == {"questionnaire_response": f"QuestionnaireResponse/{s.id}"}
            assert event.subject == f"Patient/{s.patient}"
    assert set(seen) == set(sc.LABELS)


def test_screenings_only_when_a_loaded_handler_takes_them() -> None:
    assert not screening_handled(["carecoord.patient.enrolled", "carecoord.sdoh.need-identified"])
    assert screening_handled(["carecoord.patient.enrolled", "carecoord.assessment.completed"])
    sim = Simulator(Scale(patients=60, days=8, run="r"))  # screening off: the default
    for day in range(1, 9):
        plan = sim.day(day)
        assert not plan.screenings
        assert all(e.type != sc.ASSESSMENT_COMPLETED for e in plan.events)


def test_with_the_hunger_vital_sign_the_call_leaves_food_insecurity_to_it() -> None:
    def domains(screening: bool) -> Counter[str]:
        sim = Simulator(Scale(patients=400, days=20, run="r"))
        sim.screening = screening
        return Counter(
            e.data["domain"]
            for day in range(1, 21)
            for e in sim.day(day).events
            if e.type == "carecoord.sdoh.need-identified"
        )

    without, with_hvs = domains(False), domains(True)
    assert without["food-insecurity"] > 0 and with_hvs["food-insecurity"] == 0
    assert with_hvs["housing-instability"] == without["housing-instability"] > 0
