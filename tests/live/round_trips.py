"""A strategy for the live tests that trades at once: buys 10 shares of each symbol on every third bar
time it sees and sells them on the next one; it carries its bar count as state, and asks for 5 bars of
history (which it does not use) so that a real-time node warms it up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl
from hybridtrader.config import Config
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.strategy import Context, Strategy


class RoundTrips(Strategy):
    name = "round_trips"
    history_bars = 5

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self.seen = 0

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        self.seen += 1
        for symbol in bars["symbol"].to_list():
            if ctx.position(symbol) > 0:
                ctx.close(symbol)
            elif self.seen % 3 == 0 and not ctx.open_orders(symbol):
                ctx.submit(OrderRequest(symbol, "buy", 10.0), "entry")

    def state(self) -> dict[str, Any]:
        return {"seen": self.seen}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.seen = int(state["seen"])
