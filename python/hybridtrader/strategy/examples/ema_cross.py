"""EMA 10/30 crossover: long 100 shares while EMA(10) of the close is above EMA(30), short 100 below;
each cross flips the position with one market order. A user strategy in one file:

    hybridtrader backtest --strategy hybridtrader.strategy.examples.ema_cross:EmaCross

EMAs are exponential (alpha = 2 / (n + 1), seeded with the first close) and carried across batches, so a
batch-wise computation gives exactly what a bar-by-bar one would. Trading starts once the slow EMA has
seen `slow` closes of the symbol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import polars as pl
from scipy.signal import lfilter

from hybridtrader.engine.events import BarBatch, symbol_index, symbol_rows
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.engine.strategy import Context, Strategy
from hybridtrader.strategy.rules import EventRows, batch_key


def ema(x: np.ndarray, n: int, last: float | None) -> np.ndarray:
    """EMA with alpha 2/(n+1): y_t = y_{t-1} + alpha (x_t - y_{t-1}), continuing from `last`
    (None: y_0 = x_0)."""
    a = 2.0 / (n + 1)
    if last is None:
        last = float(x[0])
    y, _ = lfilter([a], [1.0, a - 1.0], x, zi=[(1.0 - a) * last])
    return y


class EmaCross(Strategy):
    name = "ema_cross"
    book = "swing"  # held through the close: a pure crossover, not flattened at the end of the day
    fast, slow, shares = 10, 30, 100

    def __init__(self, config: object = None) -> None:
        super().__init__(config)  # type: ignore[arg-type]
        self._state: dict[str, tuple[float, float, int, int]] = {}  # symbol -> (fast, slow, closes, sign)
        self._encodings: dict[tuple[Any, Any, int], tuple[list[str], np.ndarray]] = {}

    def state(self) -> dict[str, Any]:
        return {"ema": {symbol: list(v) for symbol, v in self._state.items()}}

    def restore(self, state: Mapping[str, Any]) -> None:
        ema = state["ema"].items()
        self._state = {s: (float(f), float(sl), int(n), int(sign)) for s, (f, sl, n, sign) in ema}

    def prepare_ahead(self, history: pl.DataFrame | None, batches: Sequence[BarBatch]) -> None:
        # the feed's symbol encodings of the next batches, for `prepare` (no string hashed there)
        self._encodings = {batch_key(b.bars, b.bars.height): b.symbol_index() for b in batches}

    def prepare(self, bars: pl.DataFrame, session_rows: int) -> None:
        encoding = self._encodings.pop(batch_key(bars, session_rows), None) if self._encodings else None
        names, codes = encoding if encoding is not None else symbol_index(bars["symbol"])
        symbols = symbol_rows(names, codes)
        close = bars["close"].to_numpy()
        order = np.argsort(codes, kind="stable")  # per symbol, in time order (integers sort fast)
        cross = np.zeros(len(close), dtype=np.int8)
        bounds = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1], True])
        for lo, hi in pairwise(bounds):
            rows = order[lo:hi]
            symbol = str(symbols[rows[0]])
            f0, s0, seen, sign0 = self._state.get(symbol, (None, None, 0, 0))
            f, s = ema(close[rows], self.fast, f0), ema(close[rows], self.slow, s0)
            count = seen + np.arange(1, len(rows) + 1)
            sign = np.where(count >= self.slow, np.sign(f - s), 0).astype(np.int8)
            prev = np.r_[sign0, sign[:-1]]
            cross[rows] = np.where((sign != 0) & (sign != prev), sign, 0)
            self._state[symbol] = (float(f[-1]), float(s[-1]), int(count[-1]), int(sign[-1]))
        self._symbols, self._cross = symbols, cross
        self._events = EventRows(cross != 0)
        return None

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        for r in self._events.between(ctx.row_start, ctx.row_end):
            symbol = str(self._symbols[r])
            target = self.shares * int(self._cross[r])
            held = ctx.position(symbol) + ctx.open_shares(symbol)
            if target != held:
                ctx.submit(
                    OrderRequest(symbol, "buy" if target > held else "sell", abs(target - held)), "flip"
                )
