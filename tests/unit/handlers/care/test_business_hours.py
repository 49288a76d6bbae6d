"""Business-hours arithmetic (care/business_hours.py): the examples are worked out by hand from
the practice's calendar, not from the code."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carecoord.errors import ConfigError
from carecoord.handlers.care.business_hours import PracticeCalendar
from carecoord.handlers.clinical.loop import ClinicalLoopConfig, response_due

CHICAGO = ZoneInfo("America/Chicago")
WEEKDAYS_8_TO_5 = {d: "08:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri")}


def cal(**kwargs: object) -> PracticeCalendar:
    args: dict[str, object] = {"timezone": "America/Chicago", "hours": WEEKDAYS_8_TO_5}
    args.update(kwargs)
    return PracticeCalendar.of(**args)  # type: ignore[arg-type]


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=CHICAGO)  # type: ignore[misc]


def test_friday_afternoon_urgent_question_is_due_monday_morning_across_dst() -> None:
    # Fri 6 March 2026 15:00: 2 h left on Friday, 2 h from Monday's opening. US clocks go
    # forward on Sunday 8 March: Monday's 10:00 is CDT (UTC-5), not CST.
    due = cal().add_business_hours(local(2026, 3, 6, 15, 0), 4)
    assert due == local(2026, 3, 9, 10, 0)
    assert due.utcoffset() == timedelta(hours=-5)
    assert due.astimezone(UTC) == datetime(2026, 3, 9, 15, 0, tzinfo=UTC)


def test_friday_afternoon_routine_question_is_due_tuesday_same_time() -> None:
    assert cal().add_business_days(local(2026, 3, 6, 15, 30), 2) == local(2026, 3, 10, 15, 30)


def test_a_holiday_is_skipped() -> None:
    christmas = cal(holidays=["2026-12-25"])
    # Thu 24 Dec 16:00: 1 h on Thursday, Friday is a holiday, 3 h on Monday 28 Dec.
    assert christmas.add_business_hours(local(2026, 12, 24, 16, 0), 4) == local(2026, 12, 28, 11)
    # Routine from Thursday: Friday does not count, so Monday and Tuesday are the two days.
    assert christmas.add_business_days(local(2026, 12, 24, 9, 0), 2) == local(2026, 12, 29, 9)
    assert not christmas.is_business_day(date(2026, 12, 25))
    assert christmas.next_business_day(date(2026, 12, 24)) == date(2026, 12, 28)


def test_practice_hours_saturday_morning_and_short_days() -> None:
    hours = {**WEEKDAYS_8_TO_5, "fri": "08:00-12:00", "sat": "09:00-12:00"}
    c = cal(hours=hours)
    # Fri 11:00: 1 h on Friday, 3 h on Saturday morning -> Saturday at closing time.
    assert c.add_business_hours(local(2026, 3, 6, 11, 0), 4) == local(2026, 3, 7, 12, 0)
    # Sat 11:00: 1 h on Saturday, Sunday closed, 3 h on Monday.
    assert c.add_business_hours(local(2026, 3, 7, 11, 0), 4) == local(2026, 3, 9, 11, 0)
    # Routine asked Thu 15:00 -> 2 business days later is Saturday, which closes at 12:00.
    assert c.add_business_days(local(2026, 3, 5, 15, 0), 2) == local(2026, 3, 7, 12, 0)


def test_outside_hours_counting_starts_at_the_next_opening() -> None:
    c = cal()
    assert c.add_business_hours(local(2026, 3, 9, 6, 30), 4) == local(2026, 3, 9, 12, 0)
    assert c.add_business_hours(local(2026, 3, 9, 19, 0), 4) == local(2026, 3, 10, 12, 0)
    assert c.add_business_hours(local(2026, 3, 7, 10, 0), 4) == local(2026, 3, 9, 12, 0)  # Sat
    assert c.add_business_days(local(2026, 3, 7, 10, 0), 2) == local(2026, 3, 11, 8, 0)
    # Ending exactly at closing time stays on that day.
    assert c.add_business_hours(local(2026, 3, 9, 13, 0), 4) == local(2026, 3, 9, 17, 0)
    # Exactly at closing counts from the next opening.
    assert c.add_business_hours(local(2026, 3, 9, 17, 0), 1) == local(2026, 3, 10, 9, 0)
    assert c.is_open(local(2026, 3, 9, 8, 0)) and not c.is_open(local(2026, 3, 9, 17, 0))


def test_many_hours_span_several_days_and_utc_input_is_converted() -> None:
    c = cal()
    # Mon 9 March 14:00 CDT given in UTC (19:00Z); 20 h = 3 h Mon, 9 Tue, 8 Wed -> Wed 16:00.
    assert c.add_business_hours(datetime(2026, 3, 9, 19, 0, tzinfo=UTC), 20) == local(
        2026, 3, 11, 16, 0
    )
    with pytest.raises(ValueError):
        c.add_business_hours(datetime(2026, 3, 9, 19, 0), 1)  # naive


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timezone": "Mars/Olympus_Mons"},
        {"hours": {"mon": "17:00-08:00"}},
        {"hours": {"mon": "8-17"}},
        {"hours": {"monday": "08:00-17:00"}},
        {"hours": {}},
    ],
)
def test_invalid_calendars_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        cal(**kwargs)


def test_the_handler_configuration_names_the_bad_key_and_computes_deadlines() -> None:
    with pytest.raises(ConfigError, match="timezone"):
        ClinicalLoopConfig.of({"timezone": "Nowhere/Land"})
    with pytest.raises(ConfigError, match="practice_hours"):
        ClinicalLoopConfig.of({"practice_hours": {"mon": "25:00-26:00"}})
    config = ClinicalLoopConfig.of(
        {"timezone": "America/Chicago", "holidays": ["2026-12-25"], "practice_hours": {}}
        | {"practice_hours": WEEKDAYS_8_TO_5}
    )
    asked = local(2026, 12, 24, 16, 0)
    assert response_due(config, "urgent", asked) == local(2026, 12, 28, 11, 0)
    assert response_due(config, "routine", asked) == local(2026, 12, 29, 16, 0)
    defaults = ClinicalLoopConfig()  # UTC, Mon-Fri 08-17, 4 h / 2 days
    assert response_due(defaults, "urgent", datetime(2026, 3, 6, 15, tzinfo=UTC)) == datetime(
        2026, 3, 9, 10, tzinfo=ZoneInfo("UTC")
    )


def test_the_calendar_is_configured_from_environment_strings_and_checked_at_start() -> None:
    from carecoord.handlers.loader import load_handlers

    env = {
        "timezone": "America/Chicago",
        "practice_hours": '{"mon": "09:00-12:00", "sat": "09:00-12:00"}',
        "holidays": '["2026-12-25"]',
        "urgent_response_business_hours": "2.5",
        "routine_response_business_days": "1",
    }
    table = load_handlers(enabled=["clinical-routing"], config={"clinical-routing": env})
    config = ClinicalLoopConfig.of(table.configs["clinical-routing"])
    assert config.urgent_response_business_hours == 2.5
    # Sat 7 March 2026 11:00: 1 h on Saturday, 1.5 h on Monday from 09:00.
    assert response_due(config, "urgent", local(2026, 3, 7, 11, 0)) == local(2026, 3, 9, 10, 30)
    with pytest.raises(ConfigError, match="timezone"):
        load_handlers(enabled=["clinical-routing"], config={"clinical-routing": {"timezone": "X"}})
