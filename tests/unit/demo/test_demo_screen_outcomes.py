"""The summary's screenings: screens done per instrument, positives read from the Observations
derived from each response (not from the demo's own scoring), what followed each positive (the
referral for a positive Hunger Vital Sign, the provider's question for the others), and the
report's section in a care manager's words — or one sentence when the run had no screenings."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from carecoord.caremodel import terminology as t
from carecoord.demo import browser
from carecoord.demo import screens as sc
from carecoord.demo import summary as summary_mod
from carecoord.demo.fhirdata import FhirData
from carecoord.demo.report import render
from carecoord.demo.runner import SCREENINGS_SKIPPED, DemoRun
from carecoord.demo.screen_outcomes import ScreeningFigures, outcomes
from carecoord.demo.sim import Scale
from carecoord.demo.summary import Caseload, Figures, Funnel, Summary, compute, render_text
from carecoord.events.memory import InMemoryBroker
from carecoord.settings import load_settings

LOINC = "http://loinc.org"
POS = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                   "code": "POS"}]}  # fmt: skip


def _qr(rid: str, instrument: str) -> dict[str, Any]:
    canonical = (sc.CHECK_IN_CANONICAL if instrument == sc.CHECK_IN
                 else f"http://loinc.org/q/{instrument}")  # fmt: skip
    return {"resourceType": "QuestionnaireResponse", "id": rid, "status": "completed",
            "questionnaire": canonical, "subject": {"reference": "Patient/r-0001"}}  # fmt: skip


def _obs(rid: str, code: str, *, answer: str | None = None, score: int | None = None,
         positive: bool = False, system: str = LOINC) -> dict[str, Any]:  # fmt: skip
    obs: dict[str, Any] = {
        "resourceType": "Observation", "id": f"{rid}-{code}", "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/r-0001"},
        "derivedFrom": [{"reference": f"QuestionnaireResponse/{rid}"}],
    }  # fmt: skip
    if answer:
        obs["valueCodeableConcept"] = {"coding": [{"system": system, "code": answer}]}
    if score is not None:
        obs["valueQuantity"] = {"value": score, "unit": "{score}"}
    if positive:
        obs["interpretation"] = [POS]
    return obs


def _question(
    tid: str, response: str, *, urgent: bool, status: str = "requested"
) -> dict[str, Any]:
    text = f"PHQ-9: a reason (see QuestionnaireResponse/{response}). For the provider's review."
    return {
        "resourceType": "Task", "id": tid, "status": status, "intent": "order",
        "priority": "stat" if urgent else "routine",
        "code": {"coding": [{"system": t.TASK_CLINICAL_REVIEW.system,
                             "code": t.TASK_CLINICAL_REVIEW.code}]},
        "for": {"reference": "Patient/r-0001"},
        "input": [{"type": {"coding": [{"system": t.TASK_INPUT_QUESTION.system,
                                        "code": t.TASK_INPUT_QUESTION.code}]},
                   "valueString": text}],
    }  # fmt: skip


# A small practice's month: what the handlers would have left on the FHIR server.
RESPONSES = [
    _qr("hvs-1", sc.HVS), _qr("hvs-2", sc.HVS), _qr("hvs-3", sc.HVS),
    _qr("phq-3", sc.PHQ9), _qr("phq-30", sc.PHQ9), _qr("phq-31", sc.PHQ9),
    _qr("gad-1", sc.GAD7), _qr("chk-1", sc.CHECK_IN),
    {**_qr("other-1", sc.HVS), "questionnaire": "http://example.org/Questionnaire/x"},
]  # fmt: skip
OBSERVATIONS = [
    _obs("hvs-1", "88122-7", answer="LA6729-3", positive=True),
    _obs("hvs-1", "88124-3", answer="LA19952-3", positive=True),
    _obs("hvs-2", "88124-3", answer="LA19983-8"),  # no risk
    _obs("hvs-3", "88124-3", answer="LA19952-3", positive=True),
    _obs("phq-3", "44261-6", score=6), _obs("phq-3", "44260-8", answer="LA6569-3"),  # item 9
    _obs("phq-30", "44261-6", score=12), _obs("phq-30", "44260-8", answer="LA6568-5"),
    _obs("phq-31", "44261-6", score=9), _obs("phq-31", "44260-8", answer="LA6568-5"),
    # gad-1: nothing derived from it (not scored)
    _obs("chk-1", "medication-adherence", answer="not-as-prescribed", system=sc.CHECK_IN_SYSTEM),
]  # fmt: skip
CONDITIONS = [
    {"resourceType": "Condition", "id": "need-1", "subject": {"reference": "Patient/r-0001"},
     "evidence": [{"detail": [{"reference": "QuestionnaireResponse/hvs-1"}]}]},
]  # fmt: skip
REFERRALS = [
    {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
     "subject": {"reference": "Patient/r-0001"},
     "category": [{"coding": [{"system": t.SNOMED, "code": t.SR_CATEGORY_SOCIAL_SERVICE.code}]}],
     "reasonReference": [{"reference": "Condition/need-1"}]},
]  # fmt: skip
TASKS = [  # the question about phq-30 first: it must not count for phq-3
    _question("q-2", "phq-30", urgent=False),
    _question("q-1", "phq-3", urgent=True, status="completed"),
]


def _rows(f: ScreeningFigures) -> dict[str, tuple[int, int, int, int, dict[str, int]]]:
    return {r.instrument: (r.done, r.positive, r.urgent, r.not_scored, r.followed) for r in f.rows}


def test_screens_positives_and_what_followed_are_counted_from_the_record() -> None:
    status = {"ServiceRequest/sr-1": "no consent: manual"}
    f = outcomes(RESPONSES, OBSERVATIONS, CONDITIONS, REFERRALS, TASKS, status)
    rows = _rows(f)
    assert rows[sc.HVS] == (3, 2, 0, 0, {
        "referral waiting for the patient's agreement to be contacted": 1,
        "no referral recorded": 1,
    })  # fmt: skip
    # phq-3: item 9 above "not at all" (urgent, though the total is low); phq-30: total 12;
    # a question naming phq-30 is not one about phq-3 (the reference ends there)
    assert rows[sc.PHQ9] == (3, 2, 1, 0, {
        "urgent question to the provider: answered": 1,
        "question to the provider: waiting for the answer": 1,
    })  # fmt: skip
    assert rows[sc.GAD7] == (1, 0, 0, 1, {})
    assert rows[sc.CHECK_IN] == (1, 1, 0, 0, {"nothing sent to the provider yet": 1})
    assert [r.instrument for r in f.rows] == [sc.HVS, sc.PHQ9, sc.GAD7, sc.CHECK_IN]


def test_positives_are_the_handlers_observations_not_the_answers() -> None:
    """A response the handler did not score is "not scored", whatever it says."""
    f = outcomes(RESPONSES, [], [], [], [], {})
    assert all(r.positive == 0 and r.not_scored == r.done for r in f.rows)


SEARCHED: list[str] = []


def _fhir(request: httpx.Request) -> httpx.Response:
    kind = request.url.path.rsplit("/", 1)[-1]
    SEARCHED.append(kind)
    resources = {"QuestionnaireResponse": RESPONSES, "Observation": OBSERVATIONS,
                 "Condition": CONDITIONS, "ServiceRequest": REFERRALS, "Task": TASKS}  # fmt: skip
    entries = [{"resource": r} for r in resources.get(kind, [])]
    return httpx.Response(200, json={"resourceType": "Bundle", "entry": entries})


def _compute(monkeypatch: pytest.MonkeyPatch, skipped: str | None = None) -> Summary:
    monkeypatch.setattr(summary_mod, "worklist", lambda *a: ([], "-"))
    with FhirData("http://127.0.0.1:9/fhir", transport=httpx.MockTransport(_fhir)) as data:
        return compute(
            data, InMemoryBroker(), prefix="r-", care_managers=["Practitioner/cm-rivera"],
            capacities={}, topic_out="out", topic_dlq="dlq",
            now=datetime(2026, 11, 5, 17, tzinfo=UTC), screenings_skipped=skipped,
        )  # fmt: skip


def test_the_summary_reads_screenings_and_links_the_referrals_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = _compute(monkeypatch)
    rows = _rows(s.screenings)
    # the draft referral (held for consent, no attempt yet) as the summary's referral status
    assert rows[sc.HVS][4]["referral waiting for the patient's agreement to be contacted"] == 1
    assert rows[sc.PHQ9][:3] == (3, 2, 1)
    text = render_text(s)
    assert "food insecurity (Hunger Vital Sign)" in text
    assert (
        "depression (PHQ-9): 2 positive (score 10 or more, or thoughts of self-harm), 1 with "
        "thoughts of self-harm; then:" in text
    )
    assert "1  urgent question to the provider: answered" in text


def test_without_screenings_the_summary_says_so_and_does_not_look(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    SEARCHED.clear()
    s = _compute(monkeypatch, skipped=SCREENINGS_SKIPPED)
    assert not s.screenings.any
    assert SEARCHED and "QuestionnaireResponse" not in SEARCHED and "Observation" not in SEARCHED
    # the demo's output says it once, before the summary (main.py); the summary adds nothing
    assert "Screenings and check-ins" not in render_text(s)
    assert "Screenings and check-ins" in render_text(_compute(monkeypatch))


def _demo() -> DemoRun:
    settings = load_settings(kafka_bootstrap="127.0.0.1:9", fhir_base_url="http://127.0.0.1:9/fhir")
    return DemoRun(
        scale=Scale(patients=10, care_managers=1, days=5, run="r"), settings=settings,
        fhir_url=settings.fhir_base_url, bootstrap="127.0.0.1:9",
        care_managers=["Practitioner/cm-rivera"], capacities={"Practitioner/cm-rivera": 250},
        handler_config={}, ended_at=datetime(2026, 11, 5, 17, tzinfo=UTC),
    )  # fmt: skip


def _summary(screenings: ScreeningFigures) -> Summary:
    none = Figures("-", "-", {"a": 0})
    return Summary(
        patients=10, care_plans={"CCM": 10}, funnel={"all": Funnel(due=10, reached=4)},
        escalations={}, referrals_by_status={}, referrals_by_domain={}, referral_attempts=0,
        tcm=none, caseloads=[Caseload("Practitioner/cm-rivera", 10, 250)], billing=[],
        dead_letters=[], emitted={}, worklist_for="Practitioner/cm-rivera", worklist=[],
        worklist_source="-", snapshots=[{}], consent=none, disenrolled=none, clinical=none,
        screenings=screenings,
    )  # fmt: skip


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_report_shows_screens_positives_and_what_followed() -> None:
    f = outcomes(RESPONSES, OBSERVATIONS, CONDITIONS, REFERRALS, TASKS, {})
    html = render(_demo(), _summary(f))
    section = _text(html).split("Screenings and check-ins", 1)[1].split("For the technical", 1)[0]
    assert "food insecurity (Hunger Vital Sign) 3 2 at risk of food insecurity 0" in section
    assert "anxiety (GAD-7) 1 0 score 10 or more 1" in section
    assert "After a positive depression (PHQ-9) screen" in section
    assert "urgent question to the provider: answered 1" in section
    assert "1 with thoughts of self-harm (question 9): sent to the provider as urgent" in section
    assert "After a positive anxiety (GAD-7) screen" not in section  # no positive, no card
    chart = re.search(r'<svg id="chart-screenings".*?</svg>', html, re.S)
    assert chart is not None and chart.group(0).count("<rect") >= 8
    assert "font-size" not in chart.group(0)  # labels at the report's 13 px
    assert "chart-screenings" in browser.charts(html)  # demo-check measures its labels


def test_without_screenings_the_report_says_why_in_one_sentence() -> None:
    html = render(_demo(), _summary(ScreeningFigures(skipped=SCREENINGS_SKIPPED)))
    assert "Not simulated in this run: no loaded handler takes carecoord.assessment.completed" in (
        _text(html)
    )
    assert "chart-screenings" not in html
    assert browser.charts(html) == browser.CHARTS
