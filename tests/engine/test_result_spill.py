"""`Trader.run(spill=...)` writes each batch's finished rows as part files and reads them back in the
order of a run kept in memory: orders in the order sent even when one stays open (a gtc order) while later
ones finish and are folded before it, i.e. it comes back between them."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.backtest.clock import SimClock
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.config import Config, with_overrides
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.engine.results import ResultRows
from hybridtrader.engine.trader import Trader
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy import Context, Strategy
from polars.testing import assert_frame_equal


class LateGtc(Strategy):
    """A market order every 13th bar time, alternating sides, and on the second session's first bar a gtc
    buy limit far below the market that is canceled at the third session's first bar."""

    name = "late_gtc"
    book = "swing"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.bar_times = 0
        self.sessions: list[object] = []
        self.gtc: str | None = None

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        symbol = bars["symbol"][0]
        if ctx.session not in self.sessions:
            self.sessions.append(ctx.session)
            if len(self.sessions) == 2:
                limit = round(ctx.price(symbol) * 0.5, 2)
                self.gtc = ctx.submit(
                    OrderRequest(symbol, "buy", 5.0, "limit", "gtc", limit_price=limit), "gtc"
                )
            elif len(self.sessions) == 3 and self.gtc is not None:
                ctx.cancel(self.gtc)
        if self.bar_times % 13 == 0:
            ctx.submit(OrderRequest(symbol, "buy" if self.bar_times % 26 else "sell", 10.0), "flip")
        self.bar_times += 1


def _trader(tmp_path: Path, bars: pl.DataFrame, spill: Path | None) -> Trader:
    cfg = with_overrides(Config(data_dir=tmp_path), ["execution.enable_toxic_time_filtering=false"])
    sim = FillSimulator(FillSettings.from_config(cfg))
    return Trader(cfg, [LateGtc(cfg)], FrameFeed(bars), SimBroker(sim), SimClock(), cash=1e6, spill=spill)


def test_spilled_rows_come_back_in_order(tmp_path: Path) -> None:
    bars = generate_market(2, 4, seed=5, ticks=False).bars_1m
    want = _trader(tmp_path, bars, None).run()
    got = _trader(tmp_path, bars, tmp_path / "spill").run()
    assert got.rows["late_orders"].height == 1  # the gtc: folded after the flips sent after it
    assert len(list((tmp_path / "spill" / "orders").glob("*.parquet"))) == 4
    statuses = want.orders.filter(pl.col("leg") == "gtc")["status"].to_list()
    assert statuses == ["canceled"]
    for name in ("orders", "fills", "equity", "positions"):
        assert_frame_equal(getattr(got, name), getattr(want, name), check_exact=True)
    assert_frame_equal(got.scan("orders").collect(), want.orders, check_exact=True)
    # the orders in the order sent: their decision times never go back
    assert got.orders["decision_ts"].is_sorted()


def test_rows_taken_with_plus_keep_only_their_rows_when_more_are_spilled(tmp_path: Path) -> None:
    """A result taken mid-run (`plus`, as a live node's `result()`) is not changed by parts spilled after."""
    rows = ResultRows("t", {"x": pl.Int64}, spill=tmp_path)
    rows.add(pl.DataFrame({"x": [1, 2]}))
    taken = rows.plus(pl.DataFrame({"x": [3]}))
    rows.add(pl.DataFrame({"x": [4]}))
    assert taken.frame()["x"].to_list() == [1, 2, 3]
    assert taken.scan().collect()["x"].to_list() == [1, 2, 3]
    assert rows.frame()["x"].to_list() == [1, 2, 4]
