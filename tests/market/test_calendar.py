"""NYSE calendar against exchange_calendars ("XNYS") as the independent reference, plus hand-checked dates.

Before 2013, a Thursday July 4 moved the early close to Friday July 5 (2002), and 2003-12-26 closed early:
exchange_calendars and pandas_market_calendars (built from NYSE's closings history) agree on both, so our
calendar follows them. Before 2000 the rules differ (no Martin Luther King Jr. Day before 1998) and are out
of scope.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import exchange_calendars
import numpy as np
import pytest
from hybridtrader.market import calendar
from hypothesis import given
from hypothesis import strategies as st

FIRST, LAST = date(2000, 1, 1), date(2030, 12, 31)
UTC = calendar.UTC


@pytest.fixture(scope="module")
def xnys() -> exchange_calendars.ExchangeCalendar:
    return exchange_calendars.get_calendar("XNYS", start=FIRST.isoformat(), end=LAST.isoformat())


def test_sessions_match_exchange_calendars(xnys: exchange_calendars.ExchangeCalendar) -> None:
    reference = [ts.date() for ts in xnys.sessions]
    ours = calendar.sessions(FIRST, LAST)
    assert ours == reference
    assert len(ours) > 7_700


def test_early_closes_match_exchange_calendars(xnys: exchange_calendars.ExchangeCalendar) -> None:
    reference = sorted(ts.date() for ts in xnys.early_closes)
    ours = sorted(d for year in range(FIRST.year, LAST.year + 1) for d in calendar.early_closes(year))
    assert ours == reference
    assert date(2002, 7, 5) in ours and date(2002, 7, 3) not in ours  # pre-2013 Thursday July 4
    assert date(2013, 7, 3) in ours and date(2013, 7, 5) not in ours


def test_open_and_close_times_match_exchange_calendars(xnys: exchange_calendars.ExchangeCalendar) -> None:
    schedule = xnys.schedule
    opens = [ts.to_pydatetime() for ts in schedule["open"]]
    closes = [ts.to_pydatetime() for ts in schedule["close"]]
    ours = [calendar.session_bounds(ts.date()) for ts in schedule.index]
    assert [o for o, _ in ours] == opens
    assert [c for _, c in ours] == closes


@pytest.mark.parametrize(
    ("day", "open_", "close"),
    [
        (date(2024, 1, 2), datetime(2024, 1, 2, 14, 30), datetime(2024, 1, 2, 21, 0)),  # EST
        (date(2024, 7, 1), datetime(2024, 7, 1, 13, 30), datetime(2024, 7, 1, 20, 0)),  # EDT
        (date(2024, 7, 3), datetime(2024, 7, 3, 13, 30), datetime(2024, 7, 3, 17, 0)),  # early close
        (date(2024, 11, 29), datetime(2024, 11, 29, 14, 30), datetime(2024, 11, 29, 18, 0)),  # Black Friday
        (date(2024, 3, 11), datetime(2024, 3, 11, 13, 30), datetime(2024, 3, 11, 20, 0)),  # DST Monday
    ],
)
def test_session_bounds_hand_checked(day: date, open_: datetime, close: datetime) -> None:
    assert calendar.session_bounds(day) == (open_.replace(tzinfo=UTC), close.replace(tzinfo=UTC))


@pytest.mark.parametrize(
    "day",
    [
        date(2022, 6, 20),  # Juneteenth (Sunday) observed Monday
        date(2021, 12, 24),  # Christmas (Saturday) observed Friday
        date(2024, 3, 29),  # Good Friday
        date(2025, 1, 9),  # President Carter's funeral
        date(2012, 10, 30),  # Hurricane Sandy
        date(2024, 7, 6),  # Saturday
    ],
)
def test_closed_days(day: date) -> None:
    assert not calendar.is_session(day)
    with pytest.raises(ValueError, match=day.isoformat()):
        calendar.session_bounds(day)


def test_saturday_new_year_is_not_observed_on_friday() -> None:
    assert calendar.is_session(date(2021, 12, 31)) and calendar.is_session(date(2010, 12, 31))


def test_session_minutes_count_full_and_half_days() -> None:
    days = calendar.sessions(date(2024, 11, 25), date(2024, 11, 29))  # Thanksgiving week
    assert days == [date(2024, 11, 25), date(2024, 11, 26), date(2024, 11, 27), date(2024, 11, 29)]
    minutes = calendar.session_minutes_ns(days[0], days[-1])
    assert minutes.size == 3 * 390 + 210
    assert np.all(np.diff(minutes) > 0) and np.all(minutes % 60_000_000_000 == 0)


@given(st.dates(FIRST, LAST - timedelta(days=10)))
def test_next_and_previous_session_are_inverse_and_adjacent(day: date) -> None:
    nxt = calendar.next_session(day)
    assert nxt > day and calendar.is_session(nxt)
    assert all(not calendar.is_session(day + timedelta(days=k)) for k in range(1, (nxt - day).days))
    prev = calendar.previous_session(nxt)
    assert prev == day if calendar.is_session(day) else prev < day


@given(st.datetimes(datetime(2000, 1, 1), datetime(2030, 12, 30), timezones=st.just(UTC)))
def test_session_at_agrees_with_session_bounds(ts: datetime) -> None:
    day = calendar.session_at(ts)
    local_day = ts.astimezone(calendar.NEW_YORK).date()
    if day is None:
        if calendar.is_session(local_day):
            open_, close = calendar.session_bounds(local_day)
            assert not open_ <= ts < close
    else:
        open_, close = calendar.session_bounds(day)
        assert day == local_day and open_ <= ts < close
