"""The seed strategies trade exactly the events their models are trained on (ml.labels), and the EMA
example's batch EMAs equal a bar-by-bar recursion."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hybridtrader.config import Config
from hybridtrader.errors import ConfigError
from hybridtrader.market.synth import generate_market
from hybridtrader.ml.costs import FixedCost
from hybridtrader.ml.labels import mean_reversion_labels, session_of, triple_barrier_labels
from hybridtrader.strategy.examples.ema_cross import EmaCross
from hybridtrader.strategy.loader import build_strategy, strategy_class
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion
from hybridtrader.strategy.swing_trend import SwingTrendFollowing


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return generate_market(4, 3, seed=3, ticks=False, mean_reversion=0.3).bars_1m.sort("ts", "symbol")


def _sessions(bars: pl.DataFrame) -> list[pl.DataFrame]:
    return bars.with_columns(_d=session_of(bars["ts"])).partition_by(
        "_d", maintain_order=True, include_key=False
    )


def _events(strategy: IntradayMeanReversion | SwingTrendFollowing, frame: pl.DataFrame) -> pl.DataFrame:
    rows = strategy._events.rows
    return pl.DataFrame(
        {
            "symbol": [strategy._symbol[r] for r in rows],
            "t0": frame["ts"].gather(rows),
            "side": np.asarray(strategy._side)[rows].astype(np.int8),
        }
    )


def test_mean_reversion_events_are_the_label_events(bars: pl.DataFrame) -> None:
    cfg = Config()
    days = _sessions(bars)
    history, today = days[0], days[1]
    strat = IntradayMeanReversion(cfg)
    frame = strat.prepare(pl.concat([history, today]), today.height)
    assert frame["ts"].equals(today["ts"]) and frame["symbol"].equals(today["symbol"])
    labels = mean_reversion_labels(
        pl.concat([history, today]), cfg.ml_training.labels.mean_reversion, FixedCost(0.0)
    )
    want = (
        labels.filter(pl.col("t0") >= today["ts"].min()).select("symbol", "t0", "side").sort("t0", "symbol")
    )
    got = _events(strat, frame)
    last = today.group_by("symbol").agg(pl.col("ts").max().alias("t0"))  # labels need a later bar
    got = got.join(last, on=["symbol", "t0"], how="anti").sort("t0", "symbol")
    assert want.height > 20
    assert got.equals(want)


def test_swing_events_are_the_label_events(bars: pl.DataFrame) -> None:
    cfg = Config()
    rules = cfg.ml_training.labels.triple_barrier.model_copy(
        update={"trend_window": 30, "vol_span": 20, "event_spacing_bars": 7, "entry_strength": 0.3}
    )
    cfg.ml_training.labels.triple_barrier = rules
    strat = SwingTrendFollowing(cfg)
    days = _sessions(bars)
    strat.prepare(days[0], days[0].height)  # the first session: counts the rows of each symbol
    frame = strat.prepare(pl.concat(days[:2]), days[1].height)
    labels = triple_barrier_labels(pl.concat(days[:2]), rules, FixedCost(0.0))
    want = (
        labels.filter(pl.col("t0") >= days[1]["ts"].min()).select("symbol", "t0", "side").sort("t0", "symbol")
    )
    last = days[1].group_by("symbol").agg(pl.col("ts").max().alias("t0"))
    got = _events(strat, frame).join(last, on=["symbol", "t0"], how="anti").sort("t0", "symbol")
    assert want.height > 5
    assert got.equals(want)


def _crosses(strategy: EmaCross, rows: int) -> np.ndarray:
    """Each row's cross (+1 up, -1 down, 0 none) from the strategy's flips (symbol, target shares)."""
    out = np.zeros(rows, dtype=np.int64)
    out[strategy._events.rows] = [target // EmaCross.shares for _, target in strategy._flips]
    return out


def test_ema_cross_batches_equal_one_recursion(bars: pl.DataFrame) -> None:
    days = _sessions(bars)
    whole, split = EmaCross(), EmaCross()
    whole.prepare(bars, bars.height)
    crosses = []
    for d in days:
        split.prepare(d, d.height)
        crosses.append(_crosses(split, d.height))
    assert np.array_equal(np.concatenate(crosses), _crosses(whole, bars.height))
    # bar-by-bar reference of one symbol
    sym = bars["symbol"][0]
    close = bars.filter(pl.col("symbol") == sym)["close"].to_list()
    f = s = close[0]
    sign_prev, expect = 0, []
    for k, c in enumerate(close, start=1):
        f += 2 / 11 * (c - f)
        s += 2 / 31 * (c - s)
        sign = int(np.sign(f - s)) if k >= 30 else 0
        expect.append(sign if sign != 0 and sign != sign_prev else 0)
        sign_prev = sign
    mask = (bars["symbol"] == sym).to_numpy()
    assert _crosses(whole, bars.height)[mask].tolist() == expect
    assert sum(abs(x) for x in expect) > 10


def test_loader_finds_names_modules_and_files(tmp_path) -> None:
    assert strategy_class("ema_cross") is EmaCross
    assert (
        strategy_class("hybridtrader.strategy.mean_reversion:IntradayMeanReversion") is IntradayMeanReversion
    )
    f = tmp_path / "mine.py"
    f.write_text(
        "from hybridtrader.strategy import Strategy\n\n"
        "class Mine(Strategy):\n    def on_bars(self, ctx, bars):\n        pass\n"
    )
    assert strategy_class(f"{f}:Mine").__name__ == "Mine"
    with pytest.raises(ConfigError, match="no Strategy subclass named Nope"):
        strategy_class(f"{f}:Nope")
    with pytest.raises(ConfigError, match="expected a name"):
        strategy_class("nonsense")
    cfg = Config(data_dir=tmp_path)
    s = build_strategy("intraday_mean_reversion", cfg)
    assert s.describe()["model"] == "none (rules only)"  # an empty registry: rules only


@pytest.mark.parametrize("cls", [IntradayMeanReversion, SwingTrendFollowing])
def test_prepare_is_causal(bars: pl.DataFrame, cls: type) -> None:
    """A row's features and event do not change when later bars are cut off: computing them once per
    batch is what a live loop recomputing them every bar time sees."""
    days = _sessions(bars)
    history, today = days[0], days[1]
    cut = today.filter(pl.col("ts") < today["ts"].unique().sort()[200])
    full, part = cls(Config()), cls(Config())
    a = full.prepare(pl.concat([history, today]), today.height).head(cut.height)
    b = part.prepare(pl.concat([history, cut]), cut.height)
    assert a.equals(b)
    assert full._events.between(0, cut.height) == part._events.rows
