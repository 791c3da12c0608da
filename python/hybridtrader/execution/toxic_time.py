"""Toxic-time filtering (`execution.enable_toxic_time_filtering`): times at which no new entry is opened.

Toxic: outside the regular session; the first `open_minutes` and the last `close_minutes` of the session
(from the NYSE calendar, early closes included); within `halt_buffer_minutes` of a halt window of the
symbol (or a market-wide one under the key "*"); and an earnings blackout as reported by a caller-supplied
predicate (the earnings cache lives elsewhere). Exits are never blocked here: this filter is for entries.

Pure functions shared by the backtester and the live runner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from hybridtrader.config import ExecutionConfig, ToxicTimeConfig
from hybridtrader.market.calendar import early_closes, session_at, session_bounds
from hybridtrader.market.timeconv import from_utc_ns, utc_ns

# A halt window: (start, end); end None means the halt is still on.
HaltWindow = tuple[datetime | int, datetime | int | None]
HaltWindows = Mapping[str, Iterable[HaltWindow]]
EarningsBlackout = Callable[[str, datetime], bool]
MARKET_WIDE = "*"


def _as_datetime(ts: datetime | int, name: str) -> datetime:
    return from_utc_ns(utc_ns(ts, name))


def is_toxic_time(
    ts: datetime | int,
    symbol: str,
    *,
    rules: ToxicTimeConfig | None = None,
    halts: HaltWindows | None = None,
    earnings_blackout: EarningsBlackout | None = None,
) -> tuple[bool, str]:
    """(toxic, reason) for opening a new position in `symbol` at `ts` (aware datetime or epoch ns).

    The reason names the rule that fired and is empty when the time is fine.
    """
    rules = rules or ToxicTimeConfig()
    t = _as_datetime(ts, "ts")
    session = session_at(t)
    if session is None:
        return True, f"{t.isoformat()} is outside the regular NYSE session"
    opens, closes = session_bounds(session)
    if t < opens + timedelta(minutes=rules.open_minutes):
        return True, f"within the first {rules.open_minutes:g} minutes of the {session} session"
    if t >= closes - timedelta(minutes=rules.close_minutes):
        early = " (early close 13:00 New York)" if session in early_closes(session.year) else ""
        return True, f"within the last {rules.close_minutes:g} minutes of the {session} session{early}"
    if halts:
        buffer = timedelta(minutes=rules.halt_buffer_minutes)
        for key in (symbol, MARKET_WIDE):
            for start, end in halts.get(key, ()):
                h_start = _as_datetime(start, "halt start")
                h_end = None if end is None else _as_datetime(end, "halt end")
                if h_start - buffer <= t and (h_end is None or t < h_end + buffer):
                    what = "market-wide halt" if key == MARKET_WIDE else f"halt of {symbol}"
                    until = "ongoing" if h_end is None else f"until {h_end.isoformat()}"
                    return True, (
                        f"within {rules.halt_buffer_minutes:g} minutes of a {what} "
                        f"(from {h_start.isoformat()}, {until})"
                    )
    if earnings_blackout is not None and earnings_blackout(symbol, t):
        return True, f"earnings blackout for {symbol}"
    return False, ""


def entry_blocked(
    ts: datetime | int,
    symbol: str,
    *,
    config: ExecutionConfig,
    halts: HaltWindows | None = None,
    earnings_blackout: EarningsBlackout | None = None,
) -> tuple[bool, str]:
    """`is_toxic_time` with the config's rules when `enable_toxic_time_filtering` is on; never blocks when
    it is off."""
    if not config.enable_toxic_time_filtering:
        return False, ""
    return is_toxic_time(
        ts, symbol, rules=config.toxic_time, halts=halts, earnings_blackout=earnings_blackout
    )
