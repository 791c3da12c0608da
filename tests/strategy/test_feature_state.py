"""`strategy.streaming.FeatureState` (the features a live node carries from one bar time to the next) equals
`ml.features.compute_features` and the labels' extras (`barrier_vol`, `reversion_mean`) on the same bars;
and the swing strategy, fed one bar time per batch (live), trades with it exactly as it does recomputing
its features with Polars over the warm-up and the session every bar time (the backtest's features)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import lightgbm
import numpy as np
import polars as pl
import pytest
from helpers import assert_carried_trades_as_recomputed
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.config import Config, with_overrides
from hybridtrader.engine.trader import _tail_per_symbol
from hybridtrader.errors import StateError
from hybridtrader.market import calendar
from hybridtrader.market.schema import BAR_SCHEMA
from hybridtrader.market.synth import generate_market
from hybridtrader.ml import features
from hybridtrader.ml.features import compute_features
from hybridtrader.ml.labels import barrier_vol, reversion_mean
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion
from hybridtrader.strategy.model import Champion
from hybridtrader.strategy.rules import RuleStrategy
from hybridtrader.strategy.streaming import FeatureState
from hybridtrader.strategy.swing_trend import SwingTrendFollowing
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
CFG = Config()
# every kind FeatureState takes, at default and other windows: the seed strategies' model features and rules
NAMES = sorted(
    {*CFG.strategies["intraday_mean_reversion"].ml_model.features,
     *CFG.strategies["swing_trend_following"].ml_model.features,
     "zscore_5", "natr", "rv", "rsi_3", "adx_3", "ema_slope_4", "trend_strength_6", "ret_2", "spread_3"}
)  # fmt: skip


def _streamed(bars: pl.DataFrame, names: list[str], vol_span: int, mean_window: int) -> pl.DataFrame:
    """FeatureState's values, bar time by bar time, as a frame (symbol, ts, one column each)."""
    state = FeatureState(names, vol_span=vol_span, mean_window=mean_window)
    parts = []
    for (t,), part in bars.group_by("ts", maintain_order=True):
        cols = {c: part[c].to_numpy() for c in ("high", "low", "close", "volume")}
        values = state.step(int(t.timestamp() * 1e9), part["symbol"].to_list(), cols)
        parts.append(part.select("symbol", "ts").with_columns(pl.Series(k, v) for k, v in values.items()))
    return pl.concat(parts)


def _compare(bars: pl.DataFrame, names: list[str], vol_span: int, mean_window: int) -> None:
    tb = CFG.ml_training.labels.triple_barrier.model_copy(update={"vol_span": vol_span})
    extras = bars.sort("symbol", "ts").select(
        "symbol", "ts", barrier_vol(tb).alias("vol"), reversion_mean(mean_window).alias("mean")
    )
    want = compute_features(bars, names).join(extras, on=["symbol", "ts"])
    got = _streamed(bars, names, vol_span, mean_window).join(want, on=["symbol", "ts"], suffix="_polars")
    assert got.height == bars.height
    for name in [*names, "vol", "mean"]:
        mine, ref = got[name].to_numpy(), got[f"{name}_polars"].fill_null(np.nan).to_numpy()
        # nulls (warm-up rows, a flat window's z-score) fall on the same rows
        assert np.array_equal(np.isnan(mine), np.isnan(ref)), name
        ok = ~np.isnan(ref)
        # The mean to the bit (`reversion_mean`'s order of additions); the rest to rounding: Polars slides its
        # rolling sums where we sum each window, and a z-score or trend strength divides a difference of
        # nearly equal numbers (measured: < 1e-11 absolute on these prices)
        tol = 0.0 if name == "mean" else 1e-8
        np.testing.assert_allclose(mine[ok], ref[ok], rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("seed", [3, 8])
def test_carried_features_equal_the_polars_features_over_sessions(seed: int) -> None:
    """Two sessions of 6 symbols at 2 trades a minute (symbols miss minutes): the 390-bar windows fill."""
    names = [f"S{i}" for i in range(6)]
    bars = generate_market(symbols=names, sessions=2, start="2024-01-02", seed=seed, trades_per_minute=2.0)
    _compare(bars.bars_1m.sort("ts", "symbol"), NAMES, vol_span=100, mean_window=5)


@st.composite
def bar_frames(draw: st.DrawFn) -> pl.DataFrame:
    """Bars of 1-3 symbols over up to 60 minutes, each missing some minutes; closes move by non-zero cents
    (a flat window's std is 0 in one algorithm and a rounding residue in the other), highs and lows around
    them, volumes of 1-1000 shares."""
    rows = []
    for s in range(draw(st.integers(1, 3))):
        minutes = sorted(draw(st.sets(st.integers(0, 59), min_size=1, max_size=60)))
        n = len(minutes)
        steps = draw(st.lists(st.sampled_from([-3, -2, -1, 1, 2, 3]), min_size=n, max_size=n))
        wicks = draw(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=n, max_size=n))
        volumes = draw(st.lists(st.integers(1, 1000), min_size=n, max_size=n))
        close = 50.0 + np.cumsum(steps) / 100
        for m, c, (up, down), v in zip(minutes, close, wicks, volumes, strict=True):
            rows.append((f"S{s}", T0 + timedelta(minutes=m), c, c + up / 100, c - down / 100, c, float(v)))
    frame = pl.DataFrame(
        rows, schema=["symbol", "ts", "open", "high", "low", "close", "volume"], orient="row"
    )
    frame = frame.with_columns(vwap=pl.col("close"), trades=pl.lit(1))
    return frame.cast(BAR_SCHEMA).select(list(BAR_SCHEMA)).sort("ts", "symbol")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(bar_frames())
def test_carried_features_equal_the_polars_features_on_any_bars(bars: pl.DataFrame) -> None:
    names = ["zscore_4", "volume_zscore_3", "rsi_3", "atr_3", "natr_2", "adx_3", "ema_slope_3",
             "trend_strength_6", "ret_2", "rv_3", "spread_3"]  # fmt: skip
    _compare(bars, names, vol_span=4, mean_window=3)


def test_it_carries_every_kind_of_feature_and_bar_times_move_forward() -> None:
    assert set(features._KINDS) == FeatureState.KINDS  # a new kind of feature needs carrying too
    assert FeatureState.supported(NAMES)
    state = FeatureState(["atr"])
    one = {c: np.array([1.0]) for c in ("high", "low", "close", "volume")}
    state.step(5, ["A"], one)
    with pytest.raises(StateError, match="not after"):
        state.step(5, ["A"], one)


def _champion(strategy: str, names: list[str], bars: pl.DataFrame) -> Champion:
    """A LightGBM model on `names` fitted to a coin-flip label over `bars`, taking the half of the events
    it scores highest: a real model whose verdicts depend on every feature."""
    x = compute_features(bars, names).select(names).to_numpy()
    y = np.random.default_rng(0).integers(0, 2, len(x))
    params = {"objective": "binary", "verbose": -1, "min_data_in_leaf": 5, "seed": 0}
    model = lightgbm.train(params, lightgbm.Dataset(x, y), num_boost_round=20)
    return Champion(strategy, "1", model, float(np.nanmedian(model.predict(x))), names)


@pytest.mark.parametrize("which", ["swing", "swing_with_model", "mean_reversion_with_model"])
def test_carried_features_trade_as_the_backtest_features(which: str) -> None:
    # the swing rule with a short trend window and event spacing: many entries in one session
    tb = "ml_training.labels.triple_barrier"
    cfg = with_overrides(Config(), [
        "execution.enable_toxic_time_filtering=false", f"{tb}.trend_window=30", f"{tb}.event_spacing_bars=5",
        f"{tb}.horizon_bars=20", f"{tb}.vol_span=20", f"{tb}.entry_strength=0.2",
    ])  # fmt: skip
    bars = generate_market(4, 2, seed=11, ticks=False, mean_reversion=0.3).bars_1m.sort("ts", "symbol")
    second = calendar.session_bounds(sorted(FrameFeed(bars).days)[1])[0]
    before = bars.filter(pl.col("ts") < second)
    # two hours of the second session (the Polars side recomputes everything every bar time: keep it short)
    after = bars.filter(pl.col("ts").is_between(second, second + timedelta(hours=2), closed="left"))
    base: type[RuleStrategy] = IntradayMeanReversion if which.startswith("mean") else SwingTrendFollowing
    champion = None
    if which.endswith("model"):
        name = base(cfg).name
        champion = _champion(name, list(cfg.strategies[name].ml_model.features), before)
    warm = _tail_per_symbol(before, base(cfg).history_bars)
    assert_carried_trades_as_recomputed(base, cfg, after, warm, 10, champion)


def test_a_restore_or_a_new_session_starts_the_swing_features_again() -> None:
    bars = generate_market(2, 1, seed=2, ticks=False).bars_1m.sort("ts", "symbol")
    times = [bars.filter(pl.col("ts") == t) for t in bars["ts"].unique().sort()[:4]]
    strategy = SwingTrendFollowing(CFG)
    first = strategy.prepare(times[0], times[0].height)
    step = strategy.advance(times[1])
    assert step is not None and step.columns == first.columns and step.dtypes == first.dtypes
    strategy.restore(strategy.state())
    assert strategy.advance(times[2]) is None
    strategy.prepare(pl.concat(times[:3]), times[2].height)
    assert strategy.advance(times[3]) is not None
    strategy.on_session_close(None)  # type: ignore[arg-type]  (the strategy does not use the context)
    assert strategy.advance(times[3]) is None
