"""Simulated time for backtests (the live node's wall clock is `hybridtrader.live.feed.WallClock`)."""

from __future__ import annotations

from hybridtrader.errors import StateError


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

