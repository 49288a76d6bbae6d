"""RPM device supply billed from readings (billing/devices.py): distinct days with readings per
30-day period of the RPM enrolment. Sources: CY 2026 PFS final rule, CMS-1832-F, 90 FR 49266
(Nov 5 2025; Rimidi, Nov 3 2025: 99445 2-15 days, 99454 16-30 days, not additive); 99454's
16-day minimum before 2026 and 99453 once per episode of care (CY 2019/2021 PFS as summarised
by rvudoc.com and Foley & Lardner)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from carecoord.handlers.billing import handler as billing
from carecoord.handlers.billing.devices import Period, days_in, period_of, reading_day
from carecoord.handlers.programs import enrolment
from carecoord.testing import InMemoryFhir, events, run_events

SPECS = [*enrolment.HANDLERS, *billing.HANDLERS]


def enrolled(start: str, *, id: str = "enrol-rpm") -> Any:
    return events.patient_enrolled("p1", id=id, program="RPM", start=start)


def reading(day: date, n: int = 0, at: str = "08:00:00Z") -> Any:
    return events.rpm_reading(
        "p1", id=f"reading-{day.isoformat()}-{n}", observed_at=f"{day.isoformat()}T{at}"
    )


def days_from(first: date, count: int) -> list[Any]:
    return [reading(first + timedelta(days=i)) for i in range(count)]


def billed(fhir: InMemoryFhir) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in fhir.resources("ChargeItem"):
        if item.status == "billable":
            code = item.code.coding[0].code
            out[code] = out.get(code, 0) + 1
    return out


def run(start: str, *evts: Any, fhir: InMemoryFhir | None = None, **kw: Any) -> Any:
    result = run_events(SPECS, *([enrolled(start)] if fhir is None else []), *evts, fhir=fhir, **kw)
    assert result.dead_letters == []
    return result


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (1, {}),
        (2, {"99445": 1, "99453": 1}),
        (15, {"99445": 1, "99453": 1}),
        (16, {"99454": 1, "99453": 1}),
        (30, {"99454": 1, "99453": 1}),
    ],
)
def test_2026_device_supply_by_days_with_readings(days: int, expected: dict[str, int]) -> None:
    """PFS-2026: 99445 for 2-15 days of data in a 30-day period, 99454 for 16-30, neither for
    fewer, never both; 99453 with the episode's first device-supply code."""
    assert billed(run("2026-03-01", *days_from(date(2026, 3, 1), days)).fhir) == expected


@pytest.mark.parametrize(
    ("days", "expected"), [(1, {}), (2, {}), (15, {}), (16, {"99454": 1, "99453": 1})]
)
def test_2025_device_supply_needs_16_days(days: int, expected: dict[str, int]) -> None:
    """Before the CY 2026 PFS only 99454 existed, for 16 or more days in 30 (RPM-2021)."""
    assert billed(run("2025-03-01", *days_from(date(2025, 3, 1), days)).fhir) == expected


def test_readings_on_one_day_count_as_one_day() -> None:
    """The codes count days with data, not readings (99445: "2 to 15 days")."""
    day = date(2026, 3, 2)
    result = run("2026-03-01", *(reading(day, n) for n in range(5)))
    assert billed(result.fhir) == {}
    assert len(result.fhir.resources("Observation")) == 5  # every reading kept


def test_a_redelivered_reading_counts_once_and_is_announced_once() -> None:
    """One reading redelivered (same event id) is one Observation and one day: 1 day, not 2."""
    first = reading(date(2026, 3, 2))
    result = run("2026-03-01", first, first)
    assert len(result.fhir.resources("Observation")) == 1
    assert billed(result.fhir) == {}
    second = reading(date(2026, 3, 3))
    result = run("", second, second, fhir=result.fhir)
    assert billed(result.fhir) == {"99445": 1, "99453": 1}
    announced = [e for e in result.emitted if e.type == "carecoord.billing.threshold-reached"]
    assert sorted(e.data["cpt"] for e in announced) == ["99445", "99445", "99453", "99453"]
    assert len({e.id for e in announced}) == 2  # the replay re-announces under the same ids
    assert {e.data["days"] for e in announced} == {2}


def test_a_period_reaching_16_days_bills_99454_instead_of_99445() -> None:
    """PFS-2026: 99445 and 99454 are not billed for the same period."""
    result = run("2026-03-01", *days_from(date(2026, 3, 1), 16))
    items = {i.code.coding[0].code: i for i in result.fhir.resources("ChargeItem")}
    assert items["99445"].status == "not-billable" and items["99445"].note
    assert items["99454"].status == "billable"
    assert str(items["99454"].occurrencePeriod.start) == "2026-03-01"
    assert str(items["99454"].occurrencePeriod.end) == "2026-03-30"


def test_99453_once_per_episode_and_a_device_code_per_period() -> None:
    """99453 once per episode of care (the RPM enrolment); each 30-day period has its own
    device-supply code."""
    first = days_from(date(2026, 3, 1), 3)
    second = days_from(date(2026, 3, 31), 3)  # day 31 starts the second period
    result = run("2026-03-01", *first, *second)
    assert billed(result.fhir) == {"99445": 2, "99453": 1}
    announced = [e.data["cpt"] for e in result.emitted if e.type.endswith("threshold-reached")]
    assert sorted(announced) == ["99445", "99445", "99453"]  # each announced once


def test_readings_before_consent_or_outside_the_enrolment_are_kept_not_counted() -> None:
    """No billing without consent (B22) or before the episode starts: the readings are stored."""
    pending = events.patient_enrolled("p1", id="enrol", program="RPM", start="2026-03-01",
                                      consent=None)  # fmt: skip
    result = run_events(SPECS, pending, *days_from(date(2026, 3, 1), 3))
    assert billed(result.fhir) == {}
    assert len(result.fhir.resources("Observation")) == 3
    early = run("2026-03-10", *days_from(date(2026, 3, 1), 5))
    assert billed(early.fhir) == {}


def test_days_are_counted_in_the_practice_time_zone() -> None:
    """Distinct days in the billing handler's `timezone` (UTC unless set): 23:30 and 00:30 UTC
    are two UTC days but one day in Chicago."""
    late = events.rpm_reading("p1", id="r1", observed_at="2026-03-05T23:30:00Z")
    early = events.rpm_reading("p1", id="r2", observed_at="2026-03-06T00:30:00Z")
    assert billed(run("2026-03-01", late, early).fhir) == {"99445": 1, "99453": 1}
    chicago = {"billing": {"timezone": "America/Chicago"}}
    assert billed(run("2026-03-01", late, early, config=chicago).fhir) == {}


def test_the_period_s_last_day_picks_the_rules() -> None:
    """A period from 2025-12-20 ends 2026-01-18: billed under the 2026 rules (99445 at 2 days)."""
    assert period_of(date(2025, 12, 20), date(2026, 1, 5)) == Period(
        date(2025, 12, 20), date(2026, 1, 18)
    )
    result = run("2025-12-20", *days_from(date(2025, 12, 20), 2))
    assert billed(result.fhir) == {"99445": 1, "99453": 1}


def test_period_and_day_helpers() -> None:
    assert period_of(date(2026, 3, 1), date(2026, 2, 28)) is None
    assert period_of(date(2026, 3, 1), date(2026, 3, 30)).end == date(2026, 3, 30)  # type: ignore[union-attr]
    assert period_of(date(2026, 3, 1), date(2026, 3, 31)).start == date(2026, 3, 31)  # type: ignore[union-attr]
    from datetime import UTC, datetime

    naive = datetime(2026, 3, 5, 23, 30)
    assert reading_day(naive, UTC) == date(2026, 3, 5)
    period = Period(date(2026, 3, 1), date(2026, 3, 30))
    times = [datetime(2026, 3, d, 8, tzinfo=UTC) for d in (1, 1, 2, 31)]
    assert days_in(period, times, UTC) == 2


def test_a_malformed_reading_is_a_dead_letter_naming_the_field() -> None:
    """Bad input loses nothing: a reading whose device is no `Device/<id>` is dead-lettered with
    the field named, and nothing is written."""
    bad = events.rpm_reading("p1", id="bad", device="Patient/p1")
    result = run_events(SPECS, enrolled("2026-03-01"), bad)
    [(event, error)] = result.dead_letters
    assert event.id == "bad" and "device" in str(error)
    assert result.fhir.resources("Observation") == []
