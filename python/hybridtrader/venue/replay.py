"""Replay clock and time-ordered event tapes for the streams.

The clock maps wall time to market time with a speed factor (1 = real time, 60 = a market minute per
second). With speed "max" it only moves when told (`advance_to`), and each stream plays its tape as fast
as the client reads it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import polars as pl

from hybridtrader.errors import DataError
from hybridtrader.market.bars import aggregate_trades
from hybridtrader.market.timeconv import NS_PER_MINUTE, NS_PER_SECOND, epoch_ns
from hybridtrader.market.timeframe import Timeframe
from hybridtrader.venue.market import ReplayMarket


class ReplayClock:
    """Market time in UTC ns. Thread-safe: the venue's loop reads it, tests may move it."""

    def __init__(self, start_ns: int, speed: float | None = 1.0) -> None:
        if speed is not None and speed <= 0:
            raise DataError(f"speed: must be > 0 or None (as fast as possible), got {speed}")
        self.speed = speed
        self._lock = threading.Lock()
        self._anchor_ns = start_ns
        self._anchor_wall = time.monotonic()

    @property
    def max_speed(self) -> bool:
        return self.speed is None

    def now_ns(self) -> int:
        with self._lock:
            if self.speed is None:
                return self._anchor_ns
            return self._anchor_ns + int((time.monotonic() - self._anchor_wall) * self.speed * NS_PER_SECOND)

    def advance_to(self, ts_ns: int) -> None:
        """Jump forward to market time ts_ns (never backwards: fills and orders already happened)."""
        with self._lock:
            now = self._anchor_ns if self.speed is None else self._anchor_ns + int(
                (time.monotonic() - self._anchor_wall) * self.speed * NS_PER_SECOND)
            if ts_ns < now:
                raise DataError(f"advance_to: {ts_ns} is before the current market time {now}")
            self._anchor_ns = ts_ns
            self._anchor_wall = time.monotonic()

    def wall_seconds_until(self, ts_ns: int) -> float:
        """Wall seconds until market time reaches ts_ns (0 when already there or at max speed)."""
        if self.speed is None:
            return 0.0
        return max(0.0, (ts_ns - self.now_ns()) / (self.speed * NS_PER_SECOND))


@dataclass
class Tape:
    """Events of one kind sorted by the time they become known (`emit`), with symbol codes."""

    frame: pl.DataFrame  # rows aligned with emit / code
    emit: np.ndarray  # int64 ns
    code: np.ndarray  # int32 symbol code (ReplayMarket.codes)
    delay: int  # emit - event time (ns): 0 for ticks, the interval for bars

    def __len__(self) -> int:
        return int(self.emit.size)


def _tape(frame: pl.DataFrame, codes: dict[str, int], delay_ns: int) -> Tape:
    frame = frame.sort("ts", "symbol")
    emit = epoch_ns(frame["ts"]) + delay_ns
    code = frame["symbol"].replace_strict(codes, return_dtype=pl.Int32).to_numpy()
    return Tape(frame, np.ascontiguousarray(emit), np.ascontiguousarray(code), delay_ns)


class Tapes:
    """The replayable tapes of a market, built on first use: trades, quotes, minute bars (known at the
    end of their minute) and second aggregates (Polygon `A`, known at the end of their second)."""

    def __init__(self, market: ReplayMarket) -> None:
        self.market = market
        self._lock = threading.Lock()
        self._tapes: dict[str, Tape] = {}

    def get(self, kind: str) -> Tape:
        with self._lock:
            if kind not in self._tapes:
                self._tapes[kind] = self._build(kind)
            return self._tapes[kind]

    def _build(self, kind: str) -> Tape:
        m = self.market
        if kind == "trades":
            return _tape(m.trades.frame, m.codes, 0)
        if kind == "quotes":
            return _tape(m.quotes.frame, m.codes, 0)
        if kind == "bars":
            return _tape(m.bars(Timeframe(1, "Min")).frame, m.codes, NS_PER_MINUTE)
        if kind == "seconds":
            return _tape(aggregate_trades(m.trades.frame, every="1s"), m.codes, NS_PER_SECOND)
        raise DataError(f"tape kind: unknown {kind!r}")

