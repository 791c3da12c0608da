"""SimBroker.positions: the signed sum of every fill it reported, across the fresh simulators it starts on
the days that find no order open (a swing strategy holds positions through those resets)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.backtest.clock import SimClock
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.config import Config, with_overrides
from hybridtrader.engine.trader import Trader
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy.examples.ema_cross import EmaCross


def test_positions_are_the_fills_summed_across_simulator_resets(tmp_path: Path) -> None:
    cfg = with_overrides(Config(data_dir=tmp_path), ["execution.enable_toxic_time_filtering=false"])
    bars = generate_market(4, 4, seed=3, ticks=False).bars_1m
    first = FillSimulator(FillSettings.from_config(cfg))
    broker = SimBroker(first)
    result = Trader(cfg, [EmaCross(cfg)], FrameFeed(bars), broker, SimClock(), cash=1e6).run()
    assert broker.sim is not first  # at least one day started a fresh simulator
    fills = result.fills.with_columns(
        signed=pl.when(pl.col("side") == "buy").then("qty").otherwise(-pl.col("qty"))
    )
    expected = (
        fills.group_by("symbol").agg(pl.col("signed").sum()).filter(pl.col("signed") != 0).sort("symbol")
    )
    assert expected.height > 0  # held through the end: the carried part is exercised
    assert broker.positions() == dict(expected.iter_rows())
