"""Due and overdue assessments (assessment_schedule): due at enrolment, the interval's edges,
the grace days, which responses count (amended yes; other patients, other instruments, before
the enrolment or after the day no), and the schedule's overrides."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from carecoord.errors import ConfigError
from carecoord.handlers.programs.assessment_schedule import (
    AHC_HRSN,
    GAD7,
    PHQ9,
    AssessmentSchedule,
    Completed,
    Enrolment,
    completed_of,
    due_assessments,
    instrument_of,
)

START = date(2026, 3, 2)
BHI = Enrolment("BHI", START)
PHQ9_ONLY = AssessmentSchedule.of({"BHI": {PHQ9: 30}})


def due_on(day: date, *completed: Completed, schedule: AssessmentSchedule = PHQ9_ONLY) -> Any:
    return {d.instrument: d for d in due_assessments([BHI], list(completed), day, schedule)}


def test_due_at_enrolment_until_the_grace_days_then_overdue() -> None:
    assert due_on(START - timedelta(days=1)) == {}  # not enrolled yet
    first = due_on(START)[PHQ9]
    assert (first.due, first.overdue, first.last) == (START, False, None)
    assert first.kind == "assessment-due" and "due at enrolment" in first.detail
    assert due_on(START + timedelta(days=7))[PHQ9].overdue is False  # the 7th grace day
    late = due_on(START + timedelta(days=8))[PHQ9]
    assert late.overdue is True and late.kind == "assessment-overdue"


def test_the_interval_runs_from_the_latest_response() -> None:
    done = Completed(PHQ9, date(2026, 3, 5))
    assert due_on(date(2026, 3, 5), done) == {}
    assert due_on(date(2026, 4, 3), done) == {}  # day 29
    again = due_on(date(2026, 4, 4), done)[PHQ9]  # day 30
    assert (again.due, again.overdue, again.last) == (date(2026, 4, 4), False, date(2026, 3, 5))
    assert due_on(date(2026, 4, 12), done)[PHQ9].overdue is True
    later = Completed(PHQ9, date(2026, 4, 1))
    assert due_on(date(2026, 4, 12), done, later) == {}  # the latest one counts


def test_responses_before_the_enrolment_or_after_the_day_do_not_count() -> None:
    before = Completed(PHQ9, START - timedelta(days=1))
    assert due_on(START, before)[PHQ9].last is None
    future = Completed(PHQ9, date(2026, 3, 20))
    assert due_on(date(2026, 3, 10), future)[PHQ9].overdue is True  # not known on the 10th


def test_another_instrument_does_not_count() -> None:
    gad = Completed(GAD7, START)
    assert PHQ9 in due_on(START, gad)


def test_once_only_instruments_are_done_after_one_response() -> None:
    once = AssessmentSchedule.of({"BHI": {PHQ9: 0}})
    assert PHQ9 in due_on(START, schedule=once)
    done = Completed(PHQ9, START)
    assert due_on(date(2027, 3, 2), done, schedule=once) == {}


def test_an_ended_enrolment_asks_nothing() -> None:
    ended = Enrolment("BHI", START, date(2026, 3, 31))
    assert due_assessments([ended], [], date(2026, 4, 1), PHQ9_ONLY) == []
    assert due_assessments([ended], [], date(2026, 3, 31), PHQ9_ONLY) != []


def test_two_programs_asking_one_instrument_give_one_item_due_at_the_earliest() -> None:
    schedule = AssessmentSchedule.of({"BHI": {PHQ9: 30}, "CCM": {PHQ9: 90}})
    both = [Enrolment("CCM", date(2026, 1, 5)), BHI]
    (item,) = due_assessments(both, [], date(2026, 3, 4), schedule)
    assert item.programs == ("BHI", "CCM") and item.due == date(2026, 1, 5) and item.overdue


def test_the_default_schedule() -> None:
    default = AssessmentSchedule.of()
    assert default.for_program("BHI") == {PHQ9: 30, GAD7: 30}
    assert default.for_program("CCM") == {AHC_HRSN: 365}
    assert default.for_program("RPM") == {} and default.grace_days == 7
    bhi = due_assessments([BHI], [], START)
    assert [d.name for d in bhi] == ["PHQ-9", "GAD-7"]  # due the same day: by code


def test_an_override_replaces_a_program_and_keeps_the_others() -> None:
    schedule = AssessmentSchedule.of({"CCM": {}}, grace_days=0)
    assert schedule.for_program("CCM") == {}
    assert schedule.for_program("BHI") == {PHQ9: 30, GAD7: 30}
    assert due_on(START + timedelta(days=1), schedule=schedule)[PHQ9].overdue


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"XYZ": {PHQ9: 30}}, "unknown program"),
        ({"BHI": {"PHQ-9": 30}}, "not a LOINC panel code"),
        ({"BHI": {PHQ9: -1}}, "0 (once) or more"),
    ],
)
def test_a_bad_schedule_is_a_config_error_saying_how_to_fix_it(
    overrides: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        AssessmentSchedule.of(overrides)
    assert says in str(raised.value) and "CARECOORD_ASSESSMENT_SCHEDULE" in str(raised.value)


@pytest.mark.parametrize(
    ("canonical", "code"),
    [
        ("https://carecoord.dev/fhir/Questionnaire/44249-1", PHQ9),
        ("http://loinc.org/q/44249-1", PHQ9),
        ("http://loinc.org/q/69737-5|2.68", GAD7),
        ("http://loinc.org/q/44249-10", None),
        ("http://example.org/Questionnaire/phq9", None),
        (None, None),
    ],
)
def test_the_instrument_is_the_panel_code_the_canonical_ends_in(
    canonical: str | None, code: str | None
) -> None:
    assert instrument_of(canonical) == code


def _qr(status: str, patient: str = "p1", code: str = PHQ9, **more: Any) -> QuestionnaireResponse:
    data = {
        "resourceType": "QuestionnaireResponse",
        "id": f"qr-{status}-{patient}-{code}",
        "status": status,
        "questionnaire": f"http://loinc.org/q/{code}",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2026-03-05T23:30:00-05:00",
        **more,
    }
    return QuestionnaireResponse.model_validate(data)


def test_completed_and_amended_responses_of_the_patient_count() -> None:
    found = [
        _qr("completed"),
        _qr("amended", code=GAD7),
        _qr("in-progress"),
        _qr("stopped", code=AHC_HRSN),
        _qr("completed", patient="p2"),
    ]
    got = completed_of(found, "p1")
    assert [(c.instrument, c.authored) for c in got] == [
        (PHQ9, date(2026, 3, 6)),  # 23:30 at -05:00 is the 6th in UTC
        (GAD7, date(2026, 3, 6)),
    ]
    assert got[0].reference == f"QuestionnaireResponse/qr-completed-p1-{PHQ9}"
    dated = completed_of([_qr("completed", authored="2026-03-05")], "p1")
    assert [c.authored for c in dated] == [date(2026, 3, 5)]  # a bare date is its own day
