"""In real time (WallClock + StreamFeed against the local venue over loopback), the REST look-up of the
orders still open runs in the grace before a bar time's bars are taken (`JournaledBroker.prepoll`), not
between the bars and the orders: the Trader's poll inside its bar time only drains the trade_updates
stream. Orders still go out and fill, each fill reported once. A limit buy far below the market rests all
along, so that an order is open at every bar time's close and the look-ups run whatever the timing of the
market orders' fills."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import polars as pl
from hybridtrader.config import Config, VenueConfig
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.live.feed import WallClock
from hybridtrader.live.node import LiveNode
from hybridtrader.strategy import Context
from hybridtrader.venue import ReplayMarket, Venue
from round_trips import RoundTrips

SPEED = 60.0  # market seconds per wall second
BAR_TIMES = 10


class RestingBid(RoundTrips):
    """RoundTrips on every symbol but the first, which gets one limit buy at half its price (never filled)."""

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        symbol, *rest = sorted(bars["symbol"].to_list())
        if self.seen == 0:
            price = round(ctx.price(symbol) / 2, 2)
            ctx.submit(OrderRequest(symbol, "buy", 1.0, "limit", limit_price=price), "rest")
        super().on_bars(ctx, bars.filter(pl.col("symbol").is_in(rest)))


def test_real_time_order_look_ups_run_before_the_bar_time(
    live_market: ReplayMarket, make_node: Any, tmp_path: Path
) -> None:
    cfg = Config()
    stop = threading.Event()
    in_bar_time = threading.Event()
    look_ups: list[bool] = []  # per REST order look-up: made inside a bar time's run_batch?

    def observe(node: LiveNode) -> None:
        """From the first bar time on: flag the Trader's bar times, record the broker's look-ups."""
        trader, broker = node.trader, node.broker
        assert trader is not None
        if "run_batch" not in vars(trader):
            run_batch, history = trader.run_batch, broker.history

            def flagged(batch: Any) -> None:
                in_bar_time.set()
                try:
                    run_batch(batch)
                finally:
                    in_bar_time.clear()

            def recorded(after_ns: int = 0) -> Any:
                look_ups.append(in_bar_time.is_set())
                return history(after_ns)

            trader.run_batch, broker.history = flagged, recorded  # type: ignore[method-assign]
        if trader.n_bars // len(node.symbols) >= BAR_TIMES:
            stop.set()

    venue_cfg = VenueConfig(speed=SPEED, history_until_clock=True, rate_limit_per_minute=1_000_000,
                            impact=False)  # fmt: skip
    with Venue(venue_cfg, market=live_market) as venue:
        clock = WallClock(venue.clock.now_ns(), SPEED)
        node = make_node(cfg, venue, tmp_path / "j.sqlite", on_bar_time=observe, stop=stop, clock=clock,
                         strategies=[RestingBid(cfg)])  # fmt: skip
        try:
            node.start()
            node.run()
        finally:
            node.close()
        result = node.result
        assert result.orders.height >= 3 and result.fills.height >= 3
        assert set(result.orders["client_order_id"]) <= set(venue.broker.by_client_id)
        # each fill reported once: never more filled than the venue filled
        b = venue.broker
        for cid, qty in result.fills.group_by("client_order_id").agg(pl.col("qty").sum()).iter_rows():
            assert qty <= b.orders[b.by_client_id[cid]].filled_qty + 1e-9
    # the resting bid was open at every bar time's close, so look-ups ran: all before
    assert look_ups and not any(look_ups)
