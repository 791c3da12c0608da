"""EMA 10/30 crossover: long 100 shares while EMA(10) of the close is above EMA(30), short 100 below;
each cross flips the position with one market order. A user strategy in one file:

    hybridtrader backtest --strategy hybridtrader.strategy.examples.ema_cross:EmaCross

EMAs are exponential (alpha = 2 / (n + 1), seeded with the first close) and carried across batches, so a
batch-wise computation gives exactly what a bar-by-bar one would. Trading starts once the slow EMA has
seen `slow` closes of the symbol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from hybridtrader._core import ema_columns
from hybridtrader.engine.events import BarBatch, symbol_index
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.engine.strategy import Context, Strategy
from hybridtrader.strategy.rules import EventRows, batch_key


def ema(x: np.ndarray, n: int, last: np.ndarray) -> np.ndarray:
    """EMA with alpha 2/(n+1) down each column of `x`: y_t = alpha x_t + (1 - alpha) y_{t-1}, continuing
    from `last` (one value per column; the first close for y_0 = x_0). A column's rows depend on its rows
    before them only, so rows after a column's last value (padding) change nothing above them. The Rust
    core's recursion (`ema_columns`: scipy's `lfilter` of it, bit for bit, without its per-call cost)."""
    return ema_columns(x, 2.0 / (n + 1), last)


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
        close = bars["close"].to_numpy()
        # each symbol's closes down its column, in time order (row k: its k-th bar of the batch)
        counts = np.bincount(codes, minlength=len(names))
        # a stable sort of small integers is a radix sort (a fraction of a merge sort of intp)
        order = np.argsort(codes.astype(np.uint16) if len(names) <= 1 << 16 else codes, kind="stable")
        firsts = np.r_[0, np.cumsum(counts)[:-1]]  # of each symbol's rows in `order`
        rank = np.empty(len(codes), dtype=np.intp)
        rank[order] = np.arange(len(codes)) - np.repeat(firsts, counts)
        # each row's cell of the flat grid (a flat index and take cost half a 2-D fancy index)
        cell = rank * len(names) + codes
        grid = np.zeros((int(counts.max()), len(names)))
        grid.reshape(-1)[cell] = close
        # (fast, slow, closes, sign) before the batch; a new symbol's EMAs start at its first close
        first = grid[0].tolist()
        start = [self._state.get(sym, (x, x, 0, 0)) for sym, x in zip(names, first, strict=True)]
        f0, s0, seen, sign0 = map(np.array, zip(*start, strict=True))
        f = ema(grid, self.fast, f0).reshape(-1).take(cell)
        s = ema(grid, self.slow, s0).reshape(-1).take(cell)
        count = seen[codes] + rank + 1
        sign = np.where(count >= self.slow, np.sign(f - s), 0).astype(np.int8)
        prev_in_order = np.r_[0, sign[order][:-1]].astype(np.int8)  # the symbol's sign a bar time before
        prev_in_order[firsts] = sign0
        prev = np.empty_like(sign)
        prev[order] = prev_in_order
        cross = np.where((sign != 0) & (sign != prev), sign, 0).astype(np.int8)
        last = order[firsts + counts - 1]  # each symbol's last row
        for symbol, fl, sl, n, sg in zip(
            names, f[last].tolist(), s[last].tolist(), count[last].tolist(), sign[last].tolist(), strict=True
        ):
            self._state[symbol] = (fl, sl, n, sg)
        self._events = EventRows(cross != 0)
        at = np.asarray(self._events.rows, dtype=np.intp)
        # each cross's (symbol, target shares), by its place in `_events.rows`: what `on_bars` reads
        symbols = [names[c] for c in codes[at].tolist()]
        self._flips = list(zip(symbols, (self.shares * cross[at].astype(np.int64)).tolist(), strict=True))
        return None

    def wakes_at(self, row: int) -> int:
        return self._events.first_from(row)  # `on_bars` acts at crosses only

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        lo, hi = self._events.span(ctx.row_start, ctx.row_end)
        for symbol, target in self._flips[lo:hi]:
            held = ctx.position(symbol) + ctx.open_shares(symbol)
            if target != held:
                ctx.submit(
                    OrderRequest(symbol, "buy" if target > held else "sell", abs(target - held)), "flip"
                )
