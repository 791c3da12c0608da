"""The mean-reversion features carried bar time by bar time (`strategy.streaming`, what a live node runs)
equal the Polars batch features (`ml.features`, what the backtest runs) on the same bars; and a Trader fed
one bar time per batch (live) trades with them exactly as it did recomputing the features with Polars on
the history every bar time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from helpers import assert_carried_trades_as_recomputed
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.config import Config, with_overrides
from hybridtrader.engine.trader import _tail_per_symbol
from hybridtrader.market import calendar
from hybridtrader.market.schema import BAR_SCHEMA
from hybridtrader.market.synth import generate_market
from hybridtrader.ml.labels import reversion_mean, rule_feature
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion
from hybridtrader.strategy.rules import session_features
from hybridtrader.strategy.streaming import FeatureState
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


@st.composite
def bar_frames(draw: st.DrawFn) -> tuple[pl.DataFrame, int]:
    """Bars of 1-3 symbols over up to 60 minutes, each symbol missing some minutes; closes move by
    non-zero cents (no flat window: there the two std algorithms may differ between 0 and a rounding
    residue, and Polars' residue makes a huge z-score), highs and lows around them; and a window."""
    window = draw(st.integers(2, 8))
    rows = []
    for s in range(draw(st.integers(1, 3))):
        minutes = sorted(draw(st.sets(st.integers(0, 59), min_size=1, max_size=60)))
        steps = draw(st.lists(st.integers(1, 300).map(lambda c: c / 100) | st.integers(-300, -1).map(
            lambda c: c / 100), min_size=len(minutes), max_size=len(minutes)))  # fmt: skip
        spreads = draw(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)),
                                min_size=len(minutes), max_size=len(minutes)))  # fmt: skip
        close = 100.0 + np.cumsum(steps)
        for m, c, (up, down) in zip(minutes, close, spreads, strict=True):
            rows.append((f"S{s}", T0 + timedelta(minutes=m), c, c + up / 100, c - down / 100, c))
    frame = pl.DataFrame(rows, schema=["symbol", "ts", "open", "high", "low", "close"], orient="row")
    frame = frame.with_columns(volume=pl.lit(100.0), vwap=pl.col("close"), trades=pl.lit(1))
    return frame.cast(BAR_SCHEMA).select(list(BAR_SCHEMA)).sort("ts", "symbol"), window  # type: ignore[arg-type]


def _streamed(bars: pl.DataFrame, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each bar's (zscore, mean, atr) from `FeatureState`, bar time by bar time, in order."""
    z_name = f"zscore_{window}"
    state = FeatureState([z_name, "atr"], mean_window=window)
    out = []
    for (t,), part in bars.group_by("ts", maintain_order=True):
        cols = {k: part[k].to_numpy() for k in ("high", "low", "close", "volume")}
        values = state.step(int(t.timestamp() * 1e9), part["symbol"].to_list(), cols)
        out.append(np.c_[values[z_name], values["mean"], values["atr"]])
    return tuple(np.concatenate(out).T)  # type: ignore[return-value]


@settings(max_examples=60, deadline=None)
@given(bar_frames())
def test_streamed_features_equal_the_polars_features(case: tuple[pl.DataFrame, int]) -> None:
    bars, window = case
    z_name = f"zscore_{window}"
    ref = session_features(bars, [z_name, "atr"], bars.height, mean=reversion_mean(window))
    z, mean, atr = _streamed(bars, window)
    for name, mine, tol in ((z_name, z, 1e-7), ("mean", mean, 0.0), ("atr", atr, 1e-12)):
        want = ref[name].to_numpy()
        # nulls (warm-up: fewer than w closes, no ATR before row 14) fall on the same rows
        assert np.array_equal(np.isnan(want), np.isnan(mine)), name
        ok = ~np.isnan(want)
        # The mean to the bit (the exit compares closes with it: ties are common on cents). The z-score and
        # ATR to rounding only: Polars slides its sums, we sum each window; a z-score's error is the close's
        # rounding over the window's std (cents on ~100: <= 1e-14 x 100 / 0.005); the rule compares |z|
        # with entry_z, so a decision differs only for a z within 1e-7 of it.
        np.testing.assert_allclose(mine[ok], want[ok], rtol=tol, atol=tol, err_msg=name)


def test_carried_features_trade_as_the_backtest_features() -> None:
    cfg = with_overrides(Config(), ["execution.enable_toxic_time_filtering=false"])
    bars = generate_market(6, 2, seed=11, ticks=False, mean_reversion=0.3).bars_1m.sort("ts", "symbol")
    second = calendar.session_bounds(sorted(FrameFeed(bars).days)[1])[0]
    before, after = bars.filter(pl.col("ts") < second), bars.filter(pl.col("ts") >= second)
    # both start from the history a live node warms up on: the strategy's history_bars bars of each symbol
    warm = _tail_per_symbol(before, IntradayMeanReversion(cfg).history_bars)

    carried, c_strategy = assert_carried_trades_as_recomputed(IntradayMeanReversion, cfg, after, warm, 50)
    # the history the Trader hands a strategy that asks for it: the last history_bars bars of each symbol
    history = carried._history_frame()
    assert history is not None
    assert history.equals(_tail_per_symbol(bars, c_strategy.history_bars))


def test_a_restore_or_a_new_session_starts_the_features_again() -> None:
    """After either, `advance` declines, so the engine calls `prepare` on the history: a restart resumes on
    the journaled state, and a session's ATR is seeded where a backtest of that session seeds it."""
    cfg = Config()
    bars = generate_market(2, 1, seed=2, ticks=False).bars_1m.sort("ts", "symbol")
    times = [bars.filter(pl.col("ts") == t) for t in bars["ts"].unique().sort()[:4]]
    strategy = IntradayMeanReversion(cfg)
    strategy.prepare(times[0], times[0].height)
    assert strategy.advance(times[1]) is not None
    strategy.restore(strategy.state())
    assert strategy.advance(times[2]) is None
    frame = strategy.prepare(pl.concat(times[:3]), times[2].height)
    assert frame.columns == ["symbol", "ts", rule_feature(strategy.rules), "atr", "close", "mean"]
    assert strategy.advance(times[3]) is not None
    strategy.on_session_close(None)  # type: ignore[arg-type]  (the strategy does not use the context)
    assert strategy.advance(times[3]) is None
