"""Clocks: simulated time for backtests, the wall clock for live trading."""

from __future__ import annotations

import time

from hybridtrader.errors import StateError
from hybridtrader.market.timeconv import NS_PER_SECOND


class SimClock:
    """Simulated time that only moves when the engine moves it, and never backwards."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = int(start_ns)

    def now_ns(self) -> int:
        return self._now

    def advance_to(self, ts_ns: int) -> None:
        if ts_ns < self._now:
            raise StateError(f"SimClock: cannot go back from {self._now} to {ts_ns}")
        self._now = int(ts_ns)


class WallClock:
    """The machine's UTC clock; `advance_to` sleeps until the time has come."""

    def now_ns(self) -> int:
        return time.time_ns()

    def advance_to(self, ts_ns: int) -> None:
        wait = (ts_ns - time.time_ns()) / NS_PER_SECOND
        if wait > 0:
            time.sleep(wait)
