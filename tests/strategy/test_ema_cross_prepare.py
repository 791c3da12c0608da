"""`EmaCross.prepare` computes every symbol's EMAs down the columns of one grid; the reference is the
crossover restated bar by bar in Python for each symbol (EMAs seeded with its first close, carried across
batches, trading once the slow EMA has seen `slow` closes), over batches where symbols miss bar times."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from hybridtrader.market.schema import BAR_SCHEMA
from hybridtrader.strategy.examples.ema_cross import EmaCross
from hypothesis import given, settings
from hypothesis import strategies as st


def _batch(rng: np.random.Generator, start: int, times: int, symbols: list[str]) -> pl.DataFrame:
    """Bars at minutes start..start+times-1, each symbol missing some of them, sorted by (ts, symbol)."""
    rows = [(start + t, s) for t in range(times) for s in symbols if rng.random() < 0.8]
    close = rng.uniform(90, 110, len(rows))
    return pl.DataFrame(
        {
            "symbol": [s for _, s in rows],
            "ts": [60_000_000_000 * t for t, _ in rows],
            **{c: close for c in ("open", "high", "low", "close")},
            "volume": np.full(len(rows), 100.0),
            "vwap": close,
            "trades": np.ones(len(rows), dtype=np.int64),
        },
        schema=BAR_SCHEMA,
    )


class _Reference:
    """The crossover, one bar at a time: symbol -> (fast EMA, slow EMA, closes seen, sign)."""

    def __init__(self, fast: int, slow: int) -> None:
        self.fast, self.slow = fast, slow
        self.state: dict[str, tuple[float, float, int, int]] = {}

    def step(self, symbol: str, close: float) -> int:
        a, b = 2.0 / (self.fast + 1), 2.0 / (self.slow + 1)
        f, s, seen, sign0 = self.state.get(symbol, (close, close, 0, 0))
        f, s = f + a * (close - f), s + b * (close - s)
        seen += 1
        sign = int(math.copysign(1, f - s)) if seen >= self.slow and f != s else 0
        self.state[symbol] = (f, s, seen, sign)
        return sign if sign != 0 and sign != sign0 else 0


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_symbols=st.integers(1, 6),
    times=st.tuples(st.integers(1, 80), st.integers(1, 80)),
)
def test_prepare_crosses_equal_the_bar_by_bar_crossover(
    seed: int, n_symbols: int, times: tuple[int, int]
) -> None:
    rng = np.random.default_rng(seed)
    symbols = [f"S{k}" for k in range(n_symbols)]
    strategy, reference = EmaCross(), _Reference(EmaCross.fast, EmaCross.slow)
    start = 0
    for n in times:
        bars = _batch(rng, start, n, symbols)
        start += n
        if bars.height == 0:
            continue
        strategy.prepare(bars, bars.height)
        crosses = [(sym, reference.step(sym, c)) for sym, c in bars.select("symbol", "close").iter_rows()]
        # each cross: its row, symbol and target shares (what `on_bars` reads)
        want = [(r, sym, EmaCross.shares * x) for r, (sym, x) in enumerate(crosses) if x]
        assert [(r, *flip) for r, flip in zip(strategy._events.rows, strategy._flips, strict=True)] == want
        for sym, (f, s, seen, sign) in reference.state.items():
            got = strategy._state[sym]
            assert got[2:] == (seen, sign)
            assert math.isclose(got[0], f, rel_tol=1e-12) and math.isclose(got[1], s, rel_tol=1e-12)
