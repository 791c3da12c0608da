"""NYSE trading calendar: holidays, early closes and regular session times, computed from the rules.

Rules follow NYSE Rule 7.2 as applied since 2000: a holiday on a Saturday is observed the Friday before
(except New Year's Day, which is then not observed at all), on a Sunday the Monday after. Early closes
(13:00 New York) fall on July 3, the day after Thanksgiving and Christmas Eve when those are ordinary
weekdays; before 2013, when July 4 was a Thursday the early close was Friday July 5 instead of July 3
(2002). Unscheduled closures (national days of mourning, storms) and ad hoc early closes are listed
explicitly. Checked against exchange_calendars "XNYS" (and pandas_market_calendars' NYSE rules agree) for
every session, early close and open/close time from 2000 to 2030 (tests/market/test_calendar.py); before 2000
the rules differ (Martin Luther King Jr. Day only since 1998, 1999-12-31 closed early) and are not covered.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from hybridtrader.errors import DataError
from hybridtrader.market.timeconv import NS_PER_MINUTE, utc_ns

NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)

# Closures not produced by the rules (since 2000).
SPECIAL_CLOSURES = frozenset(
    {
        date(2001, 9, 11), date(2001, 9, 12), date(2001, 9, 13), date(2001, 9, 14),  # September 11
        date(2004, 6, 11),  # President Reagan's funeral
        date(2007, 1, 2),  # President Ford's funeral
        date(2012, 10, 29), date(2012, 10, 30),  # Hurricane Sandy
        date(2018, 12, 5),  # President G.H.W. Bush's funeral
        date(2025, 1, 9),  # President Carter's funeral
    }
)

# Early closes not produced by the rules (since 2000).
SPECIAL_EARLY_CLOSES = frozenset({date(2003, 12, 26)})  # Friday after Christmas

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th (1-based) given weekday of a month; n = -1 means the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    leg = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * leg) // 433
    month = (h + leg - 7 * m + 90) // 25
    day = (h + leg - 7 * m + 33 * month + 19) % 32
    return date(year, month, day)


def _observed(d: date) -> date:
    if d.weekday() == SAT:
        return d - timedelta(days=1)
    if d.weekday() == SUN:
        return d + timedelta(days=1)
    return d


@lru_cache(maxsize=256)
def holidays(year: int) -> frozenset[date]:
    """Full-day NYSE closures of a year (weekends excluded)."""
    days = set()
    new_year = date(year, 1, 1)
    if new_year.weekday() != SAT:  # a Saturday New Year is not moved to Friday Dec 31
        days.add(_observed(new_year))
    days.add(_nth_weekday(year, 1, MON, 3))  # Martin Luther King Jr. Day
    days.add(_nth_weekday(year, 2, MON, 3))  # Washington's Birthday
    days.add(_easter(year) - timedelta(days=2))  # Good Friday
    days.add(_nth_weekday(year, 5, MON, -1))  # Memorial Day
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))  # Juneteenth
    days.add(_observed(date(year, 7, 4)))
    days.add(_nth_weekday(year, 9, MON, 1))  # Labor Day
    days.add(_nth_weekday(year, 11, THU, 4))  # Thanksgiving
    days.add(_observed(date(year, 12, 25)))
    days.update(d for d in SPECIAL_CLOSURES if d.year == year)
    return frozenset(days)


@lru_cache(maxsize=256)
def early_closes(year: int) -> frozenset[date]:
    """Sessions that close at 13:00 New York time."""
    # July 3 and Christmas Eve only when Monday to Thursday: on a Friday they are the observed holiday.
    days = {d for d in (date(year, 7, 3), date(year, 12, 24)) if d.weekday() <= THU}
    if year < 2013 and date(year, 7, 4).weekday() == THU:
        days.discard(date(year, 7, 3))
        days.add(date(year, 7, 5))
    days.add(_nth_weekday(year, 11, THU, 4) + timedelta(days=1))  # day after Thanksgiving
    days.update(d for d in SPECIAL_EARLY_CLOSES if d.year == year)
    return frozenset(days - holidays(year))


def is_session(d: date) -> bool:
    """True when NYSE holds a regular session on that date."""
    return d.weekday() < SAT and d not in holidays(d.year)


def sessions(start: date, end: date) -> list[date]:
    """Session dates in [start, end], inclusive."""
    out = []
    d = start
    while d <= end:
        if is_session(d):
            out.append(d)
        d += timedelta(days=1)
    return out


def next_session(d: date) -> date:
    """The first session strictly after d."""
    d += timedelta(days=1)
    while not is_session(d):
        d += timedelta(days=1)
    return d


def previous_session(d: date) -> date:
    """The last session strictly before d."""
    d -= timedelta(days=1)
    while not is_session(d):
        d -= timedelta(days=1)
    return d


def session_bounds(d: date) -> tuple[datetime, datetime]:
    """Open and close of the session on d as aware UTC datetimes; ValueError if the market is closed."""
    if not is_session(d):
        raise DataError(f"{d.isoformat()} is not an NYSE session (weekend or holiday)")
    close = EARLY_CLOSE if d in early_closes(d.year) else REGULAR_CLOSE
    open_dt = datetime.combine(d, REGULAR_OPEN, NEW_YORK).astimezone(UTC)
    close_dt = datetime.combine(d, close, NEW_YORK).astimezone(UTC)
    return open_dt, close_dt


def session_minutes_ns(start: date, end: date) -> np.ndarray:
    """Start times (UTC epoch ns) of every regular-session minute in [start, end]."""
    parts = []
    for d in sessions(start, end):
        o, c = session_bounds(d)
        o_ns = utc_ns(o)
        n = int((c - o).total_seconds() // 60)
        parts.append(o_ns + np.arange(n, dtype=np.int64) * NS_PER_MINUTE)
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def session_at(ts: datetime) -> date | None:
    """The session date whose regular hours contain ts (aware datetime), or None outside hours."""
    d = ts.astimezone(NEW_YORK).date()
    if not is_session(d):
        return None
    o, c = session_bounds(d)
    return d if o <= ts < c else None
