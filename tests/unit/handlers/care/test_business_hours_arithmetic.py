"""Practice-time arithmetic at its edges (carecoord.handlers.care.business_hours): spans, closing at
midnight, the exact error messages a misconfigured practice sees, and adding zero."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from carecoord.handlers.care.business_hours import PracticeCalendar, parse_span, zone

CHI = ZoneInfo("America/Chicago")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CHI)


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        ("08:00-17:00", (time(8), time(17))),
        (" 07:30-12:45 ", (time(7, 30), time(12, 45))),
        ("00:00-24:00", (time(0), time.max)),
        ("23:59-24:00", (time(23, 59), time.max)),
        ("09:05-09:06", (time(9, 5), time(9, 6))),
    ],
)
def test_spans(span: str, expected: tuple[time, time]) -> None:
    assert parse_span(span) == expected


@pytest.mark.parametrize(
    ("span", "message"),
    [
        ("8-17", "opening hours must look like HH:MM-HH:MM, e.g. 08:00-17:00"),
        ("24:00-24:00", "opening hours must look like HH:MM-HH:MM, e.g. 08:00-17:00"),
        ("08:00-24:01", "24:00 is the latest closing time"),
        ("08:00-24:30", "24:00 is the latest closing time"),
        ("17:00-08:00", "opening hours must close after they open"),
        ("08:00-08:00", "opening hours must close after they open"),
    ],
)
def test_bad_spans_say_what_is_wrong(span: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_span(span)
    assert str(raised.value) == message


def test_bad_calendars_say_what_is_wrong() -> None:
    cases = [
        (
            {"timezone": "Mars/Olympus"},
            "unknown time zone: use an IANA name such as America/Chicago",
        ),
        ({"timezone": "../etc"}, "unknown time zone: use an IANA name such as America/Chicago"),
        (
            {"hours": {"monday": "08:00-17:00"}},
            "unknown weekday 'monday': use one of mon, tue, wed, thu, fri, sat, sun",
        ),
        ({"hours": {}}, "the practice must be open on at least one weekday"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as raised:
            PracticeCalendar.of(**kwargs)  # type: ignore[arg-type]
        assert str(raised.value) == message
    assert zone("America/Chicago") == CHI


def test_defaults_are_weekdays_eight_to_five_in_utc() -> None:
    cal = PracticeCalendar.of()
    assert cal.tz == ZoneInfo("UTC")
    assert dict(cal.hours) == {d: (time(8), time(17)) for d in range(5)}
    assert cal.holidays == frozenset()
    assert PracticeCalendar.of(holidays=["2026-03-09", date(2026, 3, 10)]).holidays == {
        date(2026, 3, 9),
        date(2026, 3, 10),
    }


def test_a_day_open_until_midnight_closes_at_the_next_days_start() -> None:
    cal = PracticeCalendar.of(timezone="America/Chicago", hours={"fri": "20:00-24:00"})
    assert cal.window(date(2026, 3, 6)) == (at("2026-03-06T20:00"), at("2026-03-07T00:00"))
    assert cal.window(date(2026, 3, 7)) is None
    assert cal.is_open(at("2026-03-06T23:59"))
    assert not cal.is_open(at("2026-03-07T00:00"))
    assert not cal.is_open(at("2026-03-06T19:59"))
    assert cal.add_business_hours(at("2026-03-06T21:00"), 3) == at("2026-03-07T00:00")
    assert cal.add_business_hours(at("2026-03-06T21:00"), 4) == at("2026-03-13T21:00")


def test_closing_time_itself_is_closed_and_the_next_opening_follows() -> None:
    cal = PracticeCalendar.of(timezone="America/Chicago")
    assert cal.next_open(at("2026-03-05T17:00")) == at("2026-03-06T08:00")
    assert cal.next_open(at("2026-03-05T16:59")) == at("2026-03-05T16:59")
    assert cal.next_open(at("2026-03-05T07:00")) == at("2026-03-05T08:00")
    assert cal.next_open(at("2026-03-06T18:00")) == at("2026-03-09T08:00")


def test_adding_nothing_and_refusing_negative_time() -> None:
    cal = PracticeCalendar.of(timezone="America/Chicago")
    assert cal.add_business_hours(at("2026-03-05T10:00"), 0) == at("2026-03-05T10:00")
    assert cal.add_business_hours(at("2026-03-05T10:00"), timedelta(minutes=90)) == at(
        "2026-03-05T11:30"
    )
    assert cal.add_business_hours(at("2026-03-05T10:00"), 7) == at("2026-03-05T17:00")
    assert cal.add_business_days(at("2026-03-05T10:00"), 0) == at("2026-03-05T10:00")
    assert cal.add_business_days(at("2026-03-07T10:00"), 0) == at("2026-03-09T08:00")
    with pytest.raises(ValueError) as hours:
        cal.add_business_hours(at("2026-03-05T10:00"), -0.5)
    assert str(hours.value) == "business hours to add must not be negative"
    with pytest.raises(ValueError) as days:
        cal.add_business_days(at("2026-03-05T10:00"), -1)
    assert str(days.value) == "business days to add must not be negative"


def test_a_business_day_keeps_the_time_within_that_days_hours() -> None:
    cal = PracticeCalendar.of(
        timezone="America/Chicago", hours={"thu": "08:00-17:00", "fri": "09:00-12:00"}
    )
    assert cal.add_business_days(at("2026-03-05T16:00"), 1) == at("2026-03-06T12:00")
    assert cal.add_business_days(at("2026-03-05T08:30"), 1) == at("2026-03-06T09:00")
    assert cal.add_business_days(at("2026-03-05T10:00"), 2) == at("2026-03-12T10:00")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError) as raised:
        PracticeCalendar.of().is_open(datetime(2026, 3, 5, 10))
    assert str(raised.value) == "datetimes must be timezone-aware"


def test_a_calendar_with_no_open_day_in_reach_says_so() -> None:
    first = date(2026, 3, 2)
    shut = PracticeCalendar.of(
        hours={"mon": "08:00-17:00"}, holidays=[first + timedelta(weeks=n) for n in range(1, 600)]
    )
    with pytest.raises(ValueError) as raised:
        shut.next_business_day(first)
    assert str(raised.value) == "the practice calendar has no business day within ten years"
    # The last day in reach still counts.
    reach = PracticeCalendar.of(
        hours={"mon": "08:00-17:00"}, holidays=[first + timedelta(weeks=n) for n in range(1, 522)]
    )
    assert reach.next_business_day(first) == first + timedelta(weeks=522)
