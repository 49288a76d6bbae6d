"""TCM: business days (weekends, federal and configured holidays), the episode's deadlines,
99495/99496 only when they were met, medication reconciliation on a CCM patient's plan."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from carecoord.core.envelope import new_event
from carecoord.handlers.care.business_days import BusinessCalendar, federal_holidays
from carecoord.handlers.jobs import sweeper
from carecoord.handlers.programs import enrolment, tcm
from carecoord.handlers.programs.tcm import TcmConfig, deadlines
from support.care_management import Runner, enrolled

SPECS = [*enrolment.HANDLERS, *tcm.HANDLERS]


@pytest.mark.parametrize(
    ("discharged", "expected"),
    [
        (date(2025, 8, 27), date(2025, 8, 29)),  # Wednesday -> Friday
        (date(2025, 8, 29), date(2025, 9, 3)),  # Friday before Labor Day -> Wednesday
        (date(2025, 7, 3), date(2025, 7, 8)),  # Thursday before 4 July (Fri) -> Tuesday
        (date(2025, 12, 24), date(2025, 12, 29)),  # Christmas Thursday -> Monday
    ],
)
def test_two_business_days_skip_weekends_and_federal_holidays(
    discharged: date, expected: date
) -> None:
    assert BusinessCalendar().add_business_days(discharged, 2) == expected


def test_configured_holidays_count_too() -> None:
    cal = BusinessCalendar([date(2025, 11, 28)])  # the day after Thanksgiving
    assert cal.add_business_days(date(2025, 11, 26), 2) == date(2025, 12, 2)
    assert BusinessCalendar(federal=False).add_business_days(date(2025, 8, 29), 2) == date(
        2025, 9, 2
    )


def test_federal_holidays_observed() -> None:
    assert date(2021, 12, 31) in federal_holidays(2021)  # 1 Jan 2022 is a Saturday
    assert date(2026, 7, 3) in federal_holidays(2026)  # 4 July 2026 is a Saturday


def test_deadlines_by_complexity() -> None:
    high = deadlines(date(2025, 8, 29), "high", TcmConfig())
    assert high["tcm-face-to-face"] == date(2025, 9, 5)
    assert high["medication-reconciliation"] == date(2025, 9, 5)
    moderate = deadlines(date(2025, 8, 29), "moderate", TcmConfig())
    assert moderate["tcm-face-to-face"] == date(2025, 9, 12)


def _discharge(run: Runner, complexity: str = "high") -> None:
    run.run(
        new_event(
            "carecoord.patient.discharged",
            "p1",
            {"discharged_at": "2025-08-29T16:00:00-05:00", "facility": "Springfield General",
             "setting": "inpatient", "complexity": complexity},
            id="dc-1",
        )
    )  # fmt: skip


def _complete(run: Runner, code: str, on: str) -> None:
    for task in run.fhir.tasks(code):
        task["status"] = "completed"
        task["executionPeriod"] = {"end": on}


def _end_episode(run: Runner) -> list[Any]:
    events = sweeper.sweep(run.fhir, datetime(2025, 9, 29, 8, tzinfo=UTC), {})
    ended = [e for e in events if e.type == "carecoord.tcm.episode-ended"]
    for e in ended:
        run.run(e)
    return ended


def test_a_discharge_opens_an_episode_with_its_deadlines_and_bills_when_met() -> None:
    run = Runner(SPECS)
    run.run(enrolled("p1", care_manager="Practitioner/cm1", start="2025-08-01"))
    _discharge(run)
    [episode] = run.fhir.all("EpisodeOfCare")
    assert episode["period"] == {"start": "2025-08-29", "end": "2025-09-27"}
    [contact] = run.fhir.tasks("tcm-interactive-contact")
    assert contact["restriction"]["period"]["end"] == "2025-09-03"
    assert contact["owner"]["reference"] == "Practitioner/cm1"
    recs = run.fhir.tasks("medication-reconciliation")
    tcm_rec = next(r for r in recs if r.get("focus"))
    assert tcm_rec["restriction"]["period"]["end"] == "2025-09-05"
    assert tcm_rec["basedOn"][0]["reference"].startswith("CarePlan/")  # CCM patient
    _complete(run, "tcm-interactive-contact", "2025-09-02")
    _complete(run, "tcm-face-to-face", "2025-09-05")
    for r in recs:
        if r.get("focus"):
            r["status"] = "completed"
            r["executionPeriod"] = {"end": "2025-09-05"}
    assert _end_episode(run)
    billed = [c for c in run.fhir.all("ChargeItem") if c["status"] == "billable"]
    assert [c["code"]["coding"][0]["code"] for c in billed] == ["99496"]
    assert billed[0]["occurrenceDateTime"] == "2025-09-27"
    assert run.fhir.all("EpisodeOfCare")[0]["status"] == "finished"
    assert [e.type for e in run.emitted] == ["carecoord.tcm.billable"]
    assert _end_episode(run) == []  # the episode ends once


def test_a_missed_deadline_bills_nothing() -> None:
    run = Runner(SPECS)
    run.run(enrolled("p1", care_manager="Practitioner/cm1", start="2025-08-01"))
    _discharge(run, "moderate")
    _complete(run, "tcm-interactive-contact", "2025-09-04")  # due 3 September: late
    _complete(run, "tcm-face-to-face", "2025-09-10")
    _complete(run, "medication-reconciliation", "2025-09-10")
    _end_episode(run)
    assert [c for c in run.fhir.all("ChargeItem") if c["status"] == "billable"] == []
    [episode] = run.fhir.all("EpisodeOfCare")
    assert episode["status"] == "finished"


def test_reconciliation_after_the_visit_misses_the_deadline() -> None:
    run = Runner(SPECS)
    run.run(enrolled("p1", care_manager="Practitioner/cm1", start="2025-08-01"))
    _discharge(run, "moderate")
    _complete(run, "tcm-interactive-contact", "2025-09-02")
    _complete(run, "tcm-face-to-face", "2025-09-03")
    _complete(run, "medication-reconciliation", "2025-09-04")  # before its due, after the visit
    _end_episode(run)
    assert [c for c in run.fhir.all("ChargeItem") if c["status"] == "billable"] == []


def _attempt(run: Runner, n: int, sent: str, status: str = "not-done") -> None:
    run.fhir.put(
        {"resourceType": "Communication", "id": f"tcm-call-{n}", "status": status,
         "subject": {"reference": "Patient/p1"}, "sent": sent,
         "statusReason": {"text": "no answer"}}
    )  # fmt: skip


def _visit_and_reconciliation_on_time(run: Runner) -> None:
    _complete(run, "tcm-face-to-face", "2025-09-10")
    _complete(run, "medication-reconciliation", "2025-09-10")


def test_two_unsuccessful_contact_attempts_by_the_due_date_count_as_the_contact() -> None:
    """CMS TCM FAQ: two or more separate, timely, documented but unsuccessful attempts, all
    other criteria met, and the service may be reported (docs/billing-rules.md T5)."""
    run = Runner(SPECS)
    run.run(enrolled("p1", care_manager="Practitioner/cm1", start="2025-08-01"))
    _discharge(run, "moderate")  # contact due Wednesday 3 September (Labor Day)
    _attempt(run, 1, "2025-09-02T10:00:00-05:00")
    _attempt(run, 2, "2025-09-03T15:00:00-05:00")
    _visit_and_reconciliation_on_time(run)  # the contact Task itself stays open
    _end_episode(run)
    billed = [c for c in run.fhir.all("ChargeItem") if c["status"] == "billable"]
    assert [c["code"]["coding"][0]["code"] for c in billed] == ["99495"]


@pytest.mark.parametrize(
    "attempts",
    [
        [("2025-09-02T10:00:00-05:00", "not-done")],  # one attempt only
        [("2025-09-02T10:00:00-05:00", "not-done"), ("2025-09-05T10:00:00-05:00", "not-done")],
        [("2025-09-02T10:00:00-05:00", "not-done"), ("2025-09-02T10:00:00-05:00", "not-done")],
        [("2025-08-20T10:00:00-05:00", "not-done"), ("2025-09-02T10:00:00-05:00", "not-done")],
    ],
    ids=["one", "second-after-the-due-date", "same-attempt-twice", "first-before-discharge"],
)
def test_attempts_that_are_too_few_late_or_not_separate_bill_nothing(
    attempts: list[tuple[str, str]],
) -> None:
    run = Runner(SPECS)
    run.run(enrolled("p1", care_manager="Practitioner/cm1", start="2025-08-01"))
    _discharge(run, "moderate")
    for n, (sent, status) in enumerate(attempts):
        _attempt(run, n, sent, status)
    _visit_and_reconciliation_on_time(run)
    _end_episode(run)
    assert [c for c in run.fhir.all("ChargeItem") if c["status"] == "billable"] == []


def test_the_number_of_attempts_is_configurable() -> None:
    run = Runner(SPECS, {"contact_attempts": 3})
    run.run(enrolled("p1", care_manager="Practitioner/cm1", start="2025-08-01"))
    _discharge(run, "moderate")
    _attempt(run, 1, "2025-09-02T10:00:00-05:00")
    _attempt(run, 2, "2025-09-03T15:00:00-05:00")
    _visit_and_reconciliation_on_time(run)
    _end_episode(run)
    assert [c for c in run.fhir.all("ChargeItem") if c["status"] == "billable"] == []
