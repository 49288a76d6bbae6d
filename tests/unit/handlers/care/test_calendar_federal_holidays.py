"""US federal holidays as observed (5 U.S.C. 6103; OPM's published lists) and business days
counted over them (carecoord.handlers.care.business_days, used for TCM's contact deadline)."""

from __future__ import annotations

from datetime import date

import pytest

from carecoord.handlers.care.business_days import BusinessCalendar, federal_holidays

# OPM, "Federal Holidays" for each year.
OPM = {
    2025: [
        "01-01",
        "01-20",
        "02-17",
        "05-26",
        "06-19",
        "07-04",
        "09-01",
        "10-13",
        "11-11",
        "11-27",
        "12-25",
    ],
    2026: [
        "01-01",
        "01-19",
        "02-16",
        "05-25",
        "06-19",
        "07-03",
        "09-07",
        "10-12",
        "11-11",
        "11-26",
        "12-25",
    ],
    # 19 June and 25 December on a Saturday: the Friday before; 4 July on a Sunday: the Monday
    # after; 1 January 2028 on a Saturday: observed Friday 31 December 2027.
    2027: [
        "01-01",
        "01-18",
        "02-15",
        "05-31",
        "06-18",
        "07-05",
        "09-06",
        "10-11",
        "11-11",
        "11-25",
        "12-24",
        "12-31",
    ],
    2028: [
        "01-17",
        "02-21",
        "05-29",
        "06-19",
        "07-04",
        "09-04",
        "10-09",
        "11-10",
        "11-23",
        "12-25",
    ],
}


@pytest.mark.parametrize("year", sorted(OPM))
def test_federal_holidays_of_a_year_as_observed(year: int) -> None:
    expected = {date.fromisoformat(f"{year}-{day}") for day in OPM[year]}
    got = federal_holidays(year)
    if year == 2028:  # 1 January 2028 (a Saturday) is observed on 31 December 2027
        got = {d for d in got if d.year == year}
    assert got == expected


def test_a_saturday_new_year_is_a_holiday_of_the_year_before() -> None:
    assert date(2027, 12, 31) in federal_holidays(2027)
    assert not BusinessCalendar().is_business_day(date(2027, 12, 31))
    assert BusinessCalendar().is_business_day(date(2027, 12, 30))


@pytest.mark.parametrize(
    ("day", "business"),
    [
        (date(2026, 3, 6), True),  # a Friday
        (date(2026, 3, 7), False),  # Saturday
        (date(2026, 3, 8), False),  # Sunday
        (date(2026, 3, 9), True),  # Monday
        (date(2026, 7, 3), False),  # 4 July observed
        (date(2026, 11, 26), False),  # Thanksgiving
    ],
)
def test_business_days(day: date, business: bool) -> None:
    assert BusinessCalendar().is_business_day(day) is business


def test_federal_holidays_can_be_turned_off_and_practice_ones_added() -> None:
    assert BusinessCalendar(federal=False).is_business_day(date(2026, 11, 26))
    assert not BusinessCalendar(federal=False).is_business_day(date(2026, 11, 28))  # Saturday
    practice = BusinessCalendar([date(2026, 11, 27)], federal=False)
    assert not practice.is_business_day(date(2026, 11, 27))
    assert practice.is_business_day(date(2026, 11, 26))


def test_adding_business_days() -> None:
    cal = BusinessCalendar()
    assert cal.add_business_days(date(2026, 3, 6), 0) == date(2026, 3, 6)
    assert cal.add_business_days(date(2026, 3, 6), 1) == date(2026, 3, 9)  # over the weekend
    assert cal.add_business_days(date(2026, 3, 7), 1) == date(2026, 3, 9)  # from a Saturday
    assert cal.add_business_days(date(2026, 3, 2), 5) == date(2026, 3, 9)
    assert cal.add_business_days(date(2026, 12, 23), 2) == date(2026, 12, 28)  # over Christmas
    assert cal.add_business_days(date(2026, 12, 23), 3) == date(2026, 12, 29)
