"""The mean-reversion rule's features carried from one bar time to the next, per symbol, in O(symbols) numpy
steps: what a live node computes for each new bar time instead of recomputing the features over every
symbol's history with Polars (a fixed cost of several milliseconds per call, whatever the rows).

The definitions are those of `ml.features` (the Polars path the backtest runs on whole sessions), row by
row of each symbol (row k = the symbol's k-th bar, from 0):
- mean_w = `ml.labels.reversion_mean` (the last w closes added oldest first, times 1/w: bit for bit);
  zscore_w = (close - mean_w) / std_w with the sample std (ddof 1); both null before row w - 1, and the
  z-score null where it is not finite (a flat window).
- true range from row 1: max(high - low, |high - prev close|, |low - prev close|); Wilder's ATR_n null
  before row n, the mean of the true ranges of rows 1..n at row n, then a_k = (1 - 1/n) a_{k-1} + tr_k / n.

Null is NaN here. The mean is the Polars path's to the bit; the z-score and ATR to rounding (Polars slides
its sums and runs its own recursion), see tests/strategy.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hybridtrader.errors import StateError
from hybridtrader.market.timeconv import time_runs


class MeanReversionFeatures:
    """Per-symbol state of zscore_w, mean_w and ATR_n (see the module docstring), advanced by `step`."""

    def __init__(self, window: int, atr_bars: int = 14) -> None:
        self.window, self.atr_bars = window, atr_bars
        self.index: dict[str, int] = {}  # symbol -> its row in the arrays below
        self.closes = np.empty((0, window))  # each symbol's last `window` closes, oldest first (NaN: none)
        self.count = np.zeros(0, np.int64)  # bars seen of each symbol
        self.prev = np.empty(0)  # each symbol's last close
        self.acc = np.empty(0)  # up to row n: the sum of the true ranges so far; from row n on: the ATR
        self.last_ns = -1  # the bar time of the last step (epoch ns)

    def _rows(self, symbols: list[str]) -> np.ndarray:
        """The state rows of `symbols`; a symbol not seen before gets a fresh row."""
        index = self.index
        new = [s for s in dict.fromkeys(symbols) if s not in index]
        if new:
            k, base = len(new), len(index)
            index.update((s, base + i) for i, s in enumerate(new))
            self.closes = np.vstack([self.closes, np.full((k, self.window), np.nan)])
            self.count = np.r_[self.count, np.zeros(k, np.int64)]
            self.prev = np.r_[self.prev, np.full(k, np.nan)]
            self.acc = np.r_[self.acc, np.zeros(k)]
        return np.fromiter(map(index.__getitem__, symbols), np.intp, len(symbols))

    def step(
        self, ts_ns: int, symbols: list[str], high: np.ndarray, low: np.ndarray, close: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Take one bar time's bars (distinct symbols) and return their (zscore_w, mean_w, ATR_n)."""
        if ts_ns <= self.last_ns:
            raise StateError(f"bar time {ts_ns} is not after the last one taken ({self.last_ns})")
        self.last_ns = ts_ns
        r = self._rows(symbols)
        k = self.count[r]  # this bar's row within its symbol
        n = self.atr_bars
        prev = self.prev[r]  # NaN on a symbol's first bar: its true range is NaN (null)
        tr = np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))
        acc = self.acc[r]
        acc = np.where((k >= 1) & (k <= n), acc + tr, acc)
        atr = np.where(k == n, acc / n, np.where(k > n, (1.0 - 1.0 / n) * acc + tr / n, np.nan))
        self.acc[r] = np.where(k >= n, atr, acc)
        self.prev[r] = close
        self.count[r] = k + 1

        window = np.concatenate([self.closes[r, 1:], close[:, None]], axis=1)
        self.closes[r] = window
        total = window[:, 0].copy()  # NaN until the window is full (it holds NaN)
        for j in range(1, self.window):
            total += window[:, j]  # oldest first, as `ml.labels.reversion_mean` adds them: the same bits
        mean = total * (1.0 / self.window)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (close - mean) / window.std(axis=1, ddof=1)
        z[~np.isfinite(z)] = np.nan
        return z, mean, atr

    def run(self, bars: pl.DataFrame) -> None:
        """`step` through `bars` (BAR_SCHEMA, sorted by ts then symbol), one bar time at a time."""
        ts = bars["ts"].dt.epoch("ns").to_numpy()
        starts, ends = time_runs(ts)
        symbols = bars["symbol"].to_list()
        high, low, close = (bars[c].to_numpy() for c in ("high", "low", "close"))
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            self.step(int(ts[lo]), symbols[lo:hi], high[lo:hi], low[lo:hi], close[lo:hi])
