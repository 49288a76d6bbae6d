"""The call list under the CY 2026 rules (CMS-1832-F, 90 FR 49266): minutes to RPM's 10-minute
code 99470, and the days with device readings an RPM patient still needs this 30-day period
(99454 at 16 days, 99445 at 2; Rimidi, Nov 3 2025), in the text table and in `--json`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from carecoord.handlers.billing import handler as billing
from carecoord.handlers.jobs.worklist import table, worklist
from carecoord.handlers.programs import enrolment, outreach
from carecoord.testing import InMemoryFhir, events, run_events

SPECS = [*enrolment.HANDLERS, *outreach.HANDLERS, *billing.HANDLERS]
CM = "Practitioner/cm1"


def rpm_patient(start: str, *later: Any) -> InMemoryFhir:
    enrolled = events.patient_enrolled(
        "p-rpm", id="enrol-rpm", program="RPM", start=start, care_manager=CM
    )
    result = run_events(SPECS, enrolled, *later)
    assert result.dead_letters == []
    return result.fhir


def readings(first: date, count: int) -> list[Any]:
    return [
        events.rpm_reading(
            "p-rpm", id=f"r-{first + timedelta(days=i)}",
            observed_at=f"{first + timedelta(days=i)}T08:00:00Z",
        )
        for i in range(count)
    ]  # fmt: skip


def row_of(fhir: InMemoryFhir, day: date) -> Any:
    listing = worklist(fhir, CM, day, now=datetime.combine(day, datetime.min.time(), UTC))
    (row,) = [r for r in listing.rows if r.patient == "Patient/p-rpm"]
    return listing, row


def test_2026_rpm_minutes_lead_to_99470_first() -> None:
    """PFS-2026: 99470 at 10 minutes of RPM treatment management in a calendar month."""
    _, row = row_of(rpm_patient("2026-03-02"), date(2026, 3, 6))
    minutes = [r for r in row.reasons if r.kind == "minutes-to-threshold"]
    assert [r.detail for r in minutes] == ["RPM: 10 min to 99470 (0 logged)"]
    assert row.minutes_needed == 10


def test_2025_rpm_minutes_lead_to_99457() -> None:
    """RPM-2021: before 2026 the first RPM time code is 99457 at 20 minutes."""
    _, row = row_of(rpm_patient("2025-03-02"), date(2025, 3, 6))
    assert row.minutes_needed == 20
    assert any("20 min to 99457" in r.detail for r in row.reasons)


def test_an_rpm_patient_short_of_16_days_is_listed_with_the_days_needed() -> None:
    """PFS-2026: 99454 needs 16 days with readings in the 30-day period, 99445 two; the list
    counts the readings up to its day and names the period's last day."""
    fhir = rpm_patient("2026-03-02", *readings(date(2026, 3, 2), 5))
    listing, row = row_of(fhir, date(2026, 3, 10))
    (days,) = [r for r in row.reasons if r.kind == "days-to-threshold"]
    assert days.detail == "RPM: 11 more days of readings to 99454 (5 this period, ends 2026-03-31)"
    assert days.due == date(2026, 3, 31) and row.days_needed == 11
    assert "11 more days of readings to 99454" in table(listing)
    data = json.loads(json.dumps(listing.to_json()))
    (patient,) = [p for p in data["patients"] if p["patient"] == "Patient/p-rpm"]
    assert patient["days_needed"] == 11
    assert "days-to-threshold" in [r["kind"] for r in patient["reasons"]]


def test_no_readings_yet_names_both_2026_codes_and_a_full_period_is_not_listed() -> None:
    """PFS-2026: 2 days reach 99445, 16 reach 99454; a period at 16 days needs nothing more."""
    _, row = row_of(rpm_patient("2026-03-02"), date(2026, 3, 3))
    (days,) = [r for r in row.reasons if r.kind == "days-to-threshold"]
    assert days.detail.startswith("RPM: 16 more days of readings to 99454; 2 to 99445 (0 ")
    full = rpm_patient("2026-03-02", *readings(date(2026, 3, 2), 16))
    _, row = row_of(full, date(2026, 3, 20))
    assert row.days_needed is None
    assert "days-to-threshold" not in [r.kind for r in row.reasons]


def test_readings_after_the_list_s_day_are_not_counted() -> None:
    fhir = rpm_patient("2026-03-02", *readings(date(2026, 3, 2), 10))
    _, row = row_of(fhir, date(2026, 3, 4))  # 3 days so far
    assert row.days_needed == 13
