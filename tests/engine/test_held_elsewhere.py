"""Equity rows of a batch in which a held symbol has no bar: the symbol counts at its last mark (the close of
its last bar), through the batch, also after another symbol enters the held set mid-batch. Reference: the
positions and closes restated from the bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.backtest.clock import SimClock
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.config import Config, with_overrides
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.engine.trader import Trader
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy import Context, Strategy


class BuyOnce(Strategy):
    """Buys 10 of `symbol` at bar index 3 of session `session` (0-based); swing: held across sessions."""

    book = "swing"

    def __init__(self, config: Config, name: str, symbol: str, session: int) -> None:
        super().__init__(config)
        self.name, self.symbol, self.session, self.sessions = name, symbol, session, 0

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        if self.sessions == self.session and ctx.bar_index == 3:
            ctx.submit(OrderRequest(self.symbol, "buy", 10.0), "b")

    def on_session_close(self, ctx: Context) -> None:
        self.sessions += 1


def test_a_held_symbol_without_bars_counts_at_its_last_close(tmp_path: Path) -> None:
    cfg = with_overrides(
        Config(data_dir=tmp_path),
        [
            "execution.fills.impact=false",
            "execution.fills.bar_participation=1",
            "execution.fills.entry_latency_ms=0",
        ],
    )
    bars = generate_market(2, 2, seed=4, ticks=False).bars_1m
    a, b = sorted(bars["symbol"].unique().to_list())
    day = bars["ts"].dt.date()
    first, second = sorted(day.unique().to_list())
    bars = bars.filter((day == first) | (pl.col("symbol") == a))  # b has no bar in the second session
    strategies = [BuyOnce(cfg, "hold_b", b, 0), BuyOnce(cfg, "add_a", a, 1)]
    sim = FillSimulator(FillSettings.from_config(cfg))
    result = Trader(cfg, strategies, FrameFeed(bars), SimBroker(sim), SimClock(), cash=1e6).run()

    mark_b = bars.filter((pl.col("symbol") == b) & (pl.col("ts").dt.date() == first))["close"][-1]
    a2 = bars.filter((pl.col("symbol") == a) & (pl.col("ts").dt.date() == second))
    equity = result.equity.filter(pl.col("ts").dt.date() == second)
    assert equity.height == a2.height  # one row per bar time of a
    # a is bought at bar 3 and filled at bar 4's open (no latency): held from bar time 4 on
    held_a = np.where(np.arange(a2.height) >= 4, 10.0, 0.0)
    want_net = held_a * a2["close"].to_numpy() + 10.0 * mark_b
    assert np.allclose(equity["net_exposure"].to_numpy(), want_net, rtol=0, atol=1e-9)
    assert np.allclose(equity["gross_exposure"].to_numpy(), want_net, rtol=0, atol=1e-9)
    assert np.allclose(equity["equity"].to_numpy(), equity["cash"].to_numpy() + want_net, rtol=0, atol=1e-6)
