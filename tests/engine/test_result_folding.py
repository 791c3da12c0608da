"""`Trader.run` folds each finished session's orders, fills and equity rows into frames (flat memory in the
number of sessions). The reference is the same run driven batch by batch without folding (as a live node
drives it): the result frames must be identical, row order included, with a gtc order that stays open across
every session while later orders finish around it."""

from __future__ import annotations

from pathlib import Path

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
from polars.testing import assert_frame_equal


class GtcAndFlips(Strategy):
    """A gtc buy limit far below the market (never fills) at the first bar, then a market order every 17th
    bar time, alternating sides, in one symbol."""

    name = "gtc_and_flips"
    book = "swing"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.bar_times = 0

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        symbol = bars["symbol"][0]
        if self.bar_times == 0:
            limit = round(ctx.price(symbol) * 0.5, 2)
            ctx.submit(OrderRequest(symbol, "buy", 5.0, "limit", "gtc", limit_price=limit), "gtc")
        elif self.bar_times % 17 == 0:
            ctx.submit(OrderRequest(symbol, "buy" if self.bar_times % 34 else "sell", 10.0), "flip")
        self.bar_times += 1


def _trader(tmp_path: Path, bars: pl.DataFrame) -> Trader:
    cfg = with_overrides(Config(data_dir=tmp_path), ["execution.enable_toxic_time_filtering=false"])
    sim = FillSimulator(FillSettings.from_config(cfg))
    return Trader(cfg, [GtcAndFlips(cfg)], FrameFeed(bars), SimBroker(sim), SimClock(), cash=1e6)


def test_folded_results_equal_unfolded_ones(tmp_path: Path) -> None:
    bars = generate_market(3, 4, seed=11, ticks=False).bars_1m
    folded = _trader(tmp_path, bars)
    got = folded.run()
    unfolded = _trader(tmp_path, bars)
    for batch in unfolded.feed.batches():
        unfolded.run_batch(batch)
    unfolded.finish()
    want = unfolded.result()

    assert got.sessions == want.sessions == 4
    assert want.orders.height > 40 and want.fills.height > 40
    assert want.orders["status"][0] in ("new", "accepted")  # the gtc, still open
    for name in ("orders", "fills", "equity", "positions"):
        assert_frame_equal(getattr(got, name), getattr(want, name), check_exact=True)
    # what run() still holds as Python objects: only the open gtc order, no fill or equity rows
    assert list(folded.orders) == list(folded.open) == [want.orders["client_order_id"][0]]
    assert folded.fill_rows() == [] and folded.curve == []
    assert len(unfolded.orders) == want.orders.height
