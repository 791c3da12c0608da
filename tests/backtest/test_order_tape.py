"""The engine's order tape is pinned: a fixed-seed backtest of both seed-style strategies (mean reversion and
the EMA crossover, 8 symbols x 3 sessions) must send exactly the orders recorded in
tests/fixtures/engine_order_tape.parquet, with the same states, fills, prices and fees. The tape was written
by the engine before its speed work (branch engine at d4a2914), so a speed-up that changes a decision,
a sizing, an exposure refusal or a fill fails here. A deliberate behaviour change rewrites the tape:
run `_backtest()` below and write `.orders` to that file, and say so in the commit."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.backtest.run import run_backtest
from hybridtrader.config import Config, with_overrides
from hybridtrader.engine.trader import TraderResult
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy.examples.ema_cross import EmaCross
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion
from polars.testing import assert_frame_equal

TAPE = Path(__file__).parents[1] / "fixtures" / "engine_order_tape.parquet"


def _backtest(tmp_path: Path) -> TraderResult:
    cfg = with_overrides(
        Config(data_dir=str(tmp_path)),
        ["execution.enable_time_slicing=false", "backtest.use_models=false", "backtest.cash=10000000"],
    )
    bars = generate_market(8, 3, seed=5, ticks=False, mean_reversion=0.3).bars_1m
    strategies = [IntradayMeanReversion(cfg), EmaCross(cfg)]
    return run_backtest(cfg, feed=FrameFeed(bars), strategies=strategies).result


def test_order_tape_is_unchanged(tmp_path: Path) -> None:
    orders = _backtest(tmp_path).orders
    expected = pl.read_parquet(TAPE)
    assert orders.height == expected.height == 569
    assert_frame_equal(
        orders, expected, check_exact=True
    )  # exact: ids, states, filled quantities, prices, fees
