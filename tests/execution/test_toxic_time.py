"""Toxic-time filter: session edges from the NYSE calendar, early closes, halts, earnings blackouts."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from helpers import ny
from hybridtrader.config import ConfigError, ExecutionConfig, ToxicTimeConfig, config_from_dict
from hybridtrader.execution.toxic_time import entry_blocked, is_toxic_time
from hybridtrader.market.calendar import NEW_YORK
from hybridtrader.market.timeconv import utc_ns

RULES = ToxicTimeConfig(open_minutes=15, close_minutes=10, halt_buffer_minutes=5)


@pytest.mark.parametrize("day", [date(2024, 1, 10), date(2024, 7, 10)])  # EST and EDT
def test_normal_day_session_edges(day: date) -> None:
    cases = [
        (ny(day, 9, 0), True, "outside the regular"),
        (ny(day, 9, 30), True, "first 15 minutes"),
        (ny(day, 9, 44, 59), True, "first 15 minutes"),
        (ny(day, 9, 45), False, ""),
        (ny(day, 15, 49, 59), False, ""),
        (ny(day, 15, 50), True, "last 10 minutes"),
        (ny(day, 16, 0), True, "outside the regular"),
    ]
    for ts, toxic, reason in cases:
        got = is_toxic_time(ts, "AAPL", rules=RULES)
        assert got[0] is toxic and reason in got[1], (ts, got)
        assert is_toxic_time(utc_ns(ts), "AAPL", rules=RULES) == got  # epoch ns gives the same answer
    assert "early close" not in is_toxic_time(ny(day, 15, 55), "AAPL", rules=RULES)[1]


def test_early_close_day() -> None:
    day = date(2024, 11, 29)  # the day after Thanksgiving closes at 13:00 New York
    assert is_toxic_time(ny(day, 12, 49), "AAPL", rules=RULES) == (False, "")
    toxic, reason = is_toxic_time(ny(day, 12, 50), "AAPL", rules=RULES)
    assert toxic and "last 10 minutes" in reason and "early close" in reason
    assert "outside the regular" in is_toxic_time(ny(day, 13, 30), "AAPL", rules=RULES)[1]
    assert "outside the regular" in is_toxic_time(ny(date(2024, 11, 28), 11, 0), "AAPL", rules=RULES)[1]
    assert "outside the regular" in is_toxic_time(ny(date(2024, 11, 30), 11, 0), "AAPL", rules=RULES)[1]


def test_halt_windows_with_buffer() -> None:
    day = date(2024, 5, 1)
    halts = {"GME": [(ny(day, 11, 0), ny(day, 11, 10))], "*": [(ny(day, 14, 0), None)]}
    expect = [
        (ny(day, 10, 54, 59), False),
        (ny(day, 10, 55), True),
        (ny(day, 11, 5), True),
        (ny(day, 11, 14, 59), True),
        (ny(day, 11, 15), False),
    ]
    for ts, toxic in expect:
        got = is_toxic_time(ts, "GME", rules=RULES, halts=halts)
        assert got[0] is toxic, (ts, got)
        assert is_toxic_time(ts, "AAPL", rules=RULES, halts=halts) == (False, "")
    assert "halt of GME" in is_toxic_time(ny(day, 11, 5), "GME", rules=RULES, halts=halts)[1]
    # Market-wide halt, still on (no end): every symbol, until it ends.
    for sym in ("GME", "AAPL"):
        toxic, reason = is_toxic_time(ny(day, 15, 0), sym, rules=RULES, halts=halts)
        assert toxic and "market-wide halt" in reason and "ongoing" in reason
    halts_ns = {"GME": [(utc_ns(ny(day, 11, 0)), utc_ns(ny(day, 11, 10)))]}
    assert is_toxic_time(ny(day, 11, 12), "GME", rules=RULES, halts=halts_ns)[0]


def test_earnings_blackout_predicate() -> None:
    seen: list[tuple[str, datetime]] = []

    def blackout(symbol: str, ts: datetime) -> bool:
        seen.append((symbol, ts))
        return symbol == "NVDA" and ts.astimezone(NEW_YORK).date() == date(2024, 5, 22)

    ts = ny(date(2024, 5, 22), 12, 0)
    assert is_toxic_time(ts, "NVDA", rules=RULES, earnings_blackout=blackout) == (
        True,
        "earnings blackout for NVDA",
    )
    assert is_toxic_time(ts, "AAPL", rules=RULES, earnings_blackout=blackout) == (False, "")
    assert is_toxic_time(ts + timedelta(days=1), "NVDA", rules=RULES, earnings_blackout=blackout) == (
        False,
        "",
    )
    assert seen[0][1] == ts and seen[0][1].tzinfo is not None


def test_entry_blocked_follows_config() -> None:
    ts = ny(date(2024, 5, 1), 9, 35)
    assert entry_blocked(ts, "AAPL", config=ExecutionConfig())[0]
    assert entry_blocked(ts, "AAPL", config=ExecutionConfig(enable_toxic_time_filtering=False)) == (False, "")
    relaxed = ExecutionConfig(toxic_time=ToxicTimeConfig(open_minutes=2))
    assert entry_blocked(ts, "AAPL", config=relaxed) == (False, "")
    cfg = config_from_dict({"execution": {"toxic_time": {"close_minutes": 30}}})
    assert entry_blocked(ny(date(2024, 5, 1), 15, 31), "AAPL", config=cfg.execution)[0]
    with pytest.raises(ConfigError, match=r"execution\.toxic_time\.open_minutes"):
        config_from_dict({"execution": {"toxic_time": {"open_minutes": -1}}})
    with pytest.raises(ValueError, match="timezone-aware"):
        is_toxic_time(datetime(2024, 5, 1, 12), "AAPL")
