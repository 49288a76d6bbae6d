"""Business-hours arithmetic for a practice: opening hours per weekday, holidays, a time zone.

    cal = PracticeCalendar.of(timezone="America/Chicago",
                              hours={"mon": "08:00-17:00", ..., "fri": "08:00-17:00"},
                              holidays=["2026-12-25"])
    cal.add_business_hours(asked_at, 4)   # urgent: 4 practice hours later
    cal.add_business_days(asked_at, 2)    # routine: 2 business days later

Wall-clock arithmetic in the practice's zone (zoneinfo): a DST change happens at night, outside
practice hours, so an hour of practice time is an hour on the clock. Results are aware datetimes
in the practice's zone. One opening interval per day (a lunch break is not modelled). No library:
`businesstimedelta` (the closest on PyPI) was last released in 2019 and needs pytz.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_HOURS: dict[str, str] = {day: "08:00-17:00" for day in WEEKDAYS[:5]}
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
# Safety net for a calendar with no open day in reach (e.g. every day a holiday).
_MAX_DAYS_AHEAD = 3660


def parse_span(text: str) -> tuple[time, time]:
    """ "08:00-17:00" -> (08:00, 17:00); "24:00" closes at midnight. ValueError if invalid."""
    match = _SPAN.match(text.strip())
    if match is None:
        raise ValueError("opening hours must look like HH:MM-HH:MM, e.g. 08:00-17:00")
    oh, om, ch, cm = (int(g) for g in match.groups())
    if ch == 24 and cm != 0:
        raise ValueError("24:00 is the latest closing time")
    opens = time(oh, om)
    closes = time.max if ch == 24 else time(ch, cm)
    if closes <= opens:
        raise ValueError("opening hours must close after they open")
    return opens, closes


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone: use an IANA name such as America/Chicago") from None


@dataclass(frozen=True)
class PracticeCalendar:
    tz: ZoneInfo
    hours: Mapping[int, tuple[time, time]]  # weekday (Monday 0) -> (opens, closes); absent = shut
    holidays: frozenset[date]

    @classmethod
    def of(
        cls,
        *,
        timezone: str = "UTC",
        hours: Mapping[str, str] | None = None,
        holidays: Iterable[date | str] = (),
    ) -> PracticeCalendar:
        spans = DEFAULT_HOURS if hours is None else hours
        parsed: dict[int, tuple[time, time]] = {}
        for day, span in spans.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}: use one of {', '.join(WEEKDAYS)}")
            parsed[WEEKDAYS.index(day)] = parse_span(span)
        if not parsed:
            raise ValueError("the practice must be open on at least one weekday")
        days = frozenset(d if isinstance(d, date) else date.fromisoformat(d) for d in holidays)
        return cls(zone(timezone), parsed, days)

    # -- days ------------------------------------------------------------------------------

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.hours and day not in self.holidays

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """(opening, closing) of `day` in the practice's zone, None when it is closed."""
        if not self.is_business_day(day):
            return None
        opens, closes = self.hours[day.weekday()]
        start = datetime.combine(day, opens, self.tz)
        end = (
            datetime.combine(day + timedelta(days=1), time(), self.tz)
            if closes == time.max
            else datetime.combine(day, closes, self.tz)
        )
        return start, end

    def next_business_day(self, day: date) -> date:
        """The first business day after `day`."""
        for n in range(1, _MAX_DAYS_AHEAD):
            candidate = day + timedelta(days=n)
            if self.is_business_day(candidate):
                return candidate
        raise ValueError("the practice calendar has no business day within ten years")

    # -- instants --------------------------------------------------------------------------

    def local(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            raise ValueError("datetimes must be timezone-aware")
        return at.astimezone(self.tz)

    def is_open(self, at: datetime) -> bool:
        at = self.local(at)
        w = self.window(at.date())
        return w is not None and w[0] <= at < w[1]

    def next_open(self, at: datetime) -> datetime:
        """`at` if the practice is open then, else its next opening."""
        at = self.local(at)
        w = self.window(at.date())
        if w is not None and at < w[1]:
            return max(at, w[0])
        nxt = self.window(self.next_business_day(at.date()))
        assert nxt is not None
        return nxt[0]

    def add_business_hours(self, at: datetime, hours: float | timedelta) -> datetime:
        """The instant `hours` of practice time after `at` (counting from the next opening
        when the practice is closed at `at`). Ending exactly at closing time stays there."""
        remaining = hours if isinstance(hours, timedelta) else timedelta(hours=hours)
        if remaining < timedelta(0):
            raise ValueError("business hours to add must not be negative")
        current = self.next_open(at)
        while True:
            w = self.window(current.date())
            assert w is not None
            available = w[1] - current
            if remaining <= available:
                return current + remaining
            remaining -= available
            nxt = self.window(self.next_business_day(current.date()))
            assert nxt is not None
            current = nxt[0]

    def add_business_days(self, at: datetime, days: int) -> datetime:
        """The same time of day `days` business days after `at` (counting from the next opening
        when the practice is closed at `at`), kept within that day's opening hours."""
        if days < 0:
            raise ValueError("business days to add must not be negative")
        start = self.next_open(at)
        day = start.date()
        for _ in range(days):
            day = self.next_business_day(day)
        w = self.window(day)
        assert w is not None
        target = datetime.combine(day, start.time(), self.tz)
        return min(max(target, w[0]), w[1])


__all__ = ["DEFAULT_HOURS", "WEEKDAYS", "PracticeCalendar", "parse_span", "zone"]
