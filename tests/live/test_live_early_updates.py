"""The broker's updates applied as the lockstep clock moves (`Trader.apply_early`, offered them by
`JournaledBroker.prepoll`), before the bar time's bars are in hand, leave the node where applying them at
the bar time's own poll leaves it: the same orders, fills and equity curve, and after every bar time the
same positions in the exposure manager (pending exposure is priced at the bar time's closes, so what the
early updates moved is priced again when the bar time runs). The same node with `apply_early` refusing
every offer is the reference; the updates must really have moved out of the bar times for the comparison
to mean anything."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from hybridtrader.config import Config
from hybridtrader.engine.events import OrderUpdate
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.live.node import LiveNode
from hybridtrader.strategy import Context
from hybridtrader.venue import ReplayMarket, Venue
from live_venue import live_venue_config
from round_trips import RoundTrips


class Holds(RoundTrips):
    """`RoundTrips` holding longer: buys 10 shares of each symbol it holds none of on every fourth bar
    time, sells them two bar times later. Between its orders no order is checked, so nothing marks the
    exposure manager to the closes again: the positions keep the prices their fills were booked at."""

    name = "holds"
    history_bars = 0

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        self.seen += 1
        step = self.seen % 4
        for symbol in bars["symbol"].to_list():
            held = ctx.position(symbol) > 0
            if held and step == 2:
                ctx.close(symbol)
            elif not held and step == 0 and not ctx.open_orders(symbol):
                ctx.submit(OrderRequest(symbol, "buy", 10.0), "entry")


def _run(make_node: Callable[..., LiveNode], venue: Venue, path: Path, early: bool) -> dict[str, Any]:
    cfg = Config()
    seen: dict[str, Any] = {"exposure": [], "applied_early": 0, "in_bar_times": 0}

    def after_bar_time(node: LiveNode) -> None:
        trader = node.trader
        assert trader is not None
        # the exposure manager's positions: (symbol, shares, the price their value is taken at)
        seen["exposure"].append(sorted(trader.exposure.positions("intraday")))

    node = make_node(cfg, venue, path, strategies=[Holds(cfg)], on_bar_time=after_bar_time)
    try:
        node.start()
        trader = node.trader
        assert trader is not None
        offered = trader.apply_early

        def apply_early(updates: list[OrderUpdate], now_ns: int) -> bool:
            taken = early and offered(updates, now_ns)
            seen["applied_early"] += len(updates) if taken else 0
            return taken

        trader.apply_early = apply_early  # type: ignore[method-assign]
        run_batch, poll = trader.run_batch, node.jbroker.poll

        def counted_poll(now_ns: int) -> list[OrderUpdate]:
            out = poll(now_ns)
            seen["in_bar_times"] += len(out) if seen.get("running") else 0
            return out

        def counted_run_batch(batch: Any) -> None:
            seen["running"] = True
            try:
                run_batch(batch)
            finally:
                seen["running"] = False

        trader.run_batch = counted_run_batch  # type: ignore[method-assign]
        node.jbroker.poll = counted_poll  # type: ignore[method-assign]
        node.run()
    finally:
        node.close()
    seen["result"] = node.result
    return seen


def test_updates_applied_at_the_clock_move_change_nothing(
    make_node: Callable[..., LiveNode], live_market: ReplayMarket, tmp_path: Path
) -> None:
    runs = {}
    for early in (False, True):
        with Venue(live_venue_config(), market=live_market) as venue:
            runs[early] = _run(make_node, venue, tmp_path / str(early) / "j.sqlite", early)
    ref, moved = runs[False], runs[True]

    fills = moved["result"].fills.height
    assert fills > 20
    assert ref["applied_early"] == 0 and ref["in_bar_times"] > fills
    # every update of the session's bar times came at a clock move (the close's own poll is not a bar time)
    assert moved["applied_early"] > fills and moved["in_bar_times"] == 0
    a, b = ref["result"], moved["result"]
    assert a.orders.equals(b.orders)
    assert a.fills.equals(b.fills)
    assert a.equity.equals(b.equity)
    assert len(ref["exposure"]) == len(moved["exposure"]) > 300
    assert ref["exposure"] == moved["exposure"]
    assert sum(qty > 0 for bar_time in ref["exposure"] for _, qty, _ in bar_time) > 100
