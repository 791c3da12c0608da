"""Parity: the same strategy over the same replayed session, (a) through the backtest engine in-process on
the fill simulator fed the session's quotes, and (b) through the live node against the venue over loopback
(REST, trade_updates, journal), gives the same orders (client order ids, sides, quantities, decision
times) and the same fills (quantities, prices, times).

Both sides use the venue's execution settings: no latency between the order's arrival and the book (the
node's own network time is real), no market impact; and the same fees (a commission, SEC fee and TAF on
sells): the simulator charges them in the backtest, the node charges each live fill by the same rule."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import orjson
import polars as pl
from hybridtrader.backtest.clock import SimClock
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.cli.live_cmd import _sessions_from
from hybridtrader.config import Config, with_overrides
from hybridtrader.credentials import alpaca_keys
from hybridtrader.engine.events import OrderUpdate
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.engine.trader import Trader
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.live.journal import Journal
from hybridtrader.live.node import Endpoints, LiveNode
from hybridtrader.market.timeframe import Timeframe
from hybridtrader.risk.exposure_manager import ExposureManager
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion
from hybridtrader.venue import Venue


class QuoteBroker:
    """The backtest side: the fill simulator fed the replayed quotes up to each call's time (as the venue
    feeds its own simulator up to its clock)."""

    def __init__(self, quotes: pl.DataFrame, settings: FillSettings) -> None:
        self.sim = FillSimulator(settings)
        self.quotes = quotes.sort("ts", maintain_order=True)
        self.ts = self.quotes["ts"].dt.epoch("ns").to_numpy()
        self.fed = 0
        self.open: set[str] = set()

    def _sync(self, now: int) -> None:
        upto = int(np.searchsorted(self.ts, now, side="right"))
        if upto > self.fed:
            self.sim.on_quotes(self.quotes.slice(self.fed, upto - self.fed))
            self.fed = upto
        self.sim.advance(now)

    def submit(self, cid: str, r: OrderRequest, ts: int) -> None:
        self._sync(ts)
        self.sim.submit(
            cid,
            r.symbol,
            r.side,
            r.qty,
            ts,
            type=r.type,
            time_in_force=r.time_in_force,
            limit_price=r.limit_price,
            stop_price=r.stop_price,
        )
        self.open.add(cid)

    def cancel(self, cid: str, ts: int) -> None:
        self._sync(ts)
        self.sim.cancel(cid, ts)

    def replace(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the strategy does not replace")

    def on_bars(
        self, bars: pl.DataFrame, every_ns: int, index: tuple[list[str], np.ndarray] | None = None
    ) -> None:
        return None

    def poll(self, now: int) -> list[OrderUpdate]:
        self._sync(now)
        out = []
        for e in self.sim.drain().with_columns(pl.col("ts").dt.epoch("ns")).iter_rows(named=True):
            out.append(
                OrderUpdate(
                    e["ts"],
                    e["client_order_id"],
                    e["symbol"],
                    e["side"],
                    e["event"],
                    e["qty"],
                    e["price"],
                    e["fee"],
                    e["filled_qty"],
                    e["leaves_qty"],
                    e["reason"],
                )
            )
        return out

    def has_open_orders(self) -> bool:
        return bool(self.sim.open_orders().height)

    def positions(self) -> dict[str, float]:
        return {}


def _config() -> Config:
    return with_overrides(Config(), [
        "execution.fills.commission_per_share=0.005", "execution.fills.commission_min=1.0",
        "execution.fills.impact=false",
        "execution.fills.entry_latency_ms=0", "execution.fills.ack_latency_ms=0", "live.use_models=false",
    ])  # fmt: skip


def test_backtest_and_live_node_trade_alike(live_venue: Venue, tmp_path: Path) -> None:
    cfg = _config()
    market = live_venue.market
    cash = live_venue.config.cash

    # (a) backtest: the engine in-process on the simulator
    exposure = ExposureManager(cfg)
    exposure.load_symbols(market.symbols.select("symbol", "shortable"))
    settings = dataclasses.replace(FillSettings.from_config(cfg), entry_latency_ms=0.0, ack_latency_ms=0.0)
    bt = Trader(
        cfg,
        [IntradayMeanReversion(cfg)],
        FrameFeed(market.bars(Timeframe(1, "Min")).frame),
        QuoteBroker(market.quotes.frame, settings),
        SimClock(),
        cash=cash,
        exposure=exposure,
    )
    backtest = bt.run()

    # (b) the live node against the venue
    base = live_venue.url
    ep = Endpoints(base, base.replace("http://", "ws://") + "/stream", base, base, alpaca_keys(cfg, base))
    node = LiveNode(
        cfg,
        ep,
        sessions=_sessions_from(live_venue.clock.now_ns(), 1),
        symbols=market.names,
        journal=Journal(tmp_path / "j.sqlite"),
        stop=threading.Event(),
        limiter=RateLimiter(cfg, rates=[(1_000_000, 60.0)]),
    )
    try:
        node.start()
        node.run()
    finally:
        node.close()
    live = node.result

    cols = ["client_order_id", "symbol", "side", "qty", "decision_ts"]
    assert backtest.orders.height > 5 and backtest.fills.height > 5
    assert live.orders.select(cols).equals(backtest.orders.select(cols))
    us = pl.col("ts").dt.truncate("1us")  # the venue's wire times carry microseconds
    fcols = ["client_order_id", "symbol", "side", "qty", "price", "fee"]
    assert backtest.fills.filter(pl.col("side") == "sell")["fee"].min() > 1.0  # commission + SEC + TAF
    assert (
        live.fills.with_columns(us)
        .select("ts", *fcols)
        .equals(backtest.fills.with_columns(us).select("ts", *fcols))
    )
    # after the close: the day's report beside the journal agrees with the run
    (report_path,) = (tmp_path / "reports").glob("*.json")
    report = orjson.loads(report_path.read_bytes())
    assert report["fills"] == live.fills.height and report["orders"] == live.orders.height
    assert report["broker_positions"] == {}
