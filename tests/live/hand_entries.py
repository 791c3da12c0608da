"""A strategy for the live node's tests, loaded by file path (`live.strategies: [path.py:HandEntries]`):
it buys S00 when the bars of 09:34 and of 15:39 New York have closed, with an ATR of 0.2% of the price."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from hybridtrader.market.calendar import NEW_YORK
from hybridtrader.strategy import Context, Strategy

ENTRY_TIMES = ((9, 35), (15, 40))  # New York, when the decision is made (the bar before has closed)


class HandEntries(Strategy):
    name = "hand_entries"
    book = "intraday"

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        now = datetime.fromtimestamp(ctx.now_ns / 1e9, UTC).astimezone(NEW_YORK)
        if (now.hour, now.minute) in ENTRY_TIMES:
            ctx.enter("S00", "buy", ctx.price("S00") * 0.002)
