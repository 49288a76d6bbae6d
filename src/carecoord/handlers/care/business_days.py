"""Business days for program deadlines. CMS (TCM FAQ): "business days are Monday through Friday,
except holidays, without respect to normal practice hours or date of notification of discharge".
Holidays: the US federal holidays (5 U.S.C. 6103, observed on the Friday before a Saturday and
the Monday after a Sunday) unless turned off, plus any configured dates."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


def federal_holidays(year: int) -> set[date]:
    """US federal holidays of `year`, as observed."""
    fixed = [date(year, 1, 1), date(year, 6, 19), date(year, 7, 4), date(year, 11, 11)]
    fixed.append(date(year, 12, 25))
    days = {_observed(d) for d in fixed}
    days |= {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _last_weekday(year, 5, 0),  # Memorial Day
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 10, 0, 2),  # Columbus Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
    }
    if _observed(date(year + 1, 1, 1)).year == year:  # 1 Jan on a Saturday: observed 31 Dec
        days.add(_observed(date(year + 1, 1, 1)))
    return days


class BusinessCalendar:
    def __init__(self, holidays: Iterable[date] = (), *, federal: bool = True) -> None:
        self.extra = frozenset(holidays)
        self.federal = federal

    def is_business_day(self, day: date) -> bool:
        if day.weekday() >= 5 or day in self.extra:
            return False
        return not (self.federal and day in federal_holidays(day.year))

    def add_business_days(self, start: date, n: int) -> date:
        """The n-th business day after `start` (`start` itself never counts)."""
        day = start
        while n > 0:
            day += timedelta(days=1)
            if self.is_business_day(day):
                n -= 1
        return day
