"""intraday_mean_reversion: fade a stretched close back to its mean, within the session.

Entry (`ml.labels.mean_reversion_entries`): |zscore_w| >= entry_z on a bar with a positive ATR, side
-sign(z); with a champion model only when its probability reaches the threshold. Exit (`ml.labels.reverted`):
the first later close at or past the entry-time SMA_w, else after `horizon_bars` bars; the intraday book is
flattened before the close, so a trade never crosses sessions. These are the events and exits the model's
labels are made of (`ml.labels.mean_reversion_labels`). Sized by the DynamicSizer on the bar's ATR.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hybridtrader.config import Config
from hybridtrader.ml.labels import mean_reversion_entries, reverted, rule_feature
from hybridtrader.strategy.base import Context, Strategy
from hybridtrader.strategy.model import Champion
from hybridtrader.strategy.rules import EventRows, gate, session_features


class IntradayMeanReversion(Strategy):
    name = "intraday_mean_reversion"
    book = "intraday"
    history_sessions = 1  # the rolling windows see the previous session's end, as in training

    def __init__(self, config: Config | None = None, champion: Champion | None = None) -> None:
        super().__init__(config)
        self.champion = champion
        self.rules = self.config.ml_training.labels.mean_reversion
        self._open: dict[str, tuple[float, float, int]] = {}  # symbol -> (side, target, bars left)
        self._events = EventRows(np.zeros(0, bool))

    def describe(self) -> dict[str, object]:
        c = self.champion
        model = "none (rules only)" if c is None else f"{c.strategy} v{c.version} (champion)"
        return {
            **super().describe(),
            "model": model,
            "threshold": None if c is None else c.threshold,
            "rules": self.rules.model_dump(),
        }

    def prepare(self, bars: pl.DataFrame, session_rows: int) -> pl.DataFrame:
        rule = rule_feature(self.rules)
        names = [rule, "atr", *(self.champion.features if self.champion else [])]
        frame = session_features(
            bars, names, session_rows, mean=pl.col("close").rolling_mean(self.rules.window).over("symbol")
        )
        z = frame[rule].fill_null(0.0).to_numpy()
        atr = frame["atr"].fill_null(0.0).to_numpy()
        events, side = mean_reversion_entries(z, self.rules)
        events = gate(events & (atr > 0), frame, self.champion)
        self._events = EventRows(events)
        self._symbol = frame["symbol"].to_list()
        self._side, self._atr, self._mean = side, atr, frame["mean"].to_numpy()
        return frame

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        trades = self._open
        for symbol, (side, target, left) in list(trades.items()):
            if left <= 1 or reverted(side, target, ctx.price(symbol)):
                ctx.close(symbol)
                del trades[symbol]
            else:
                trades[symbol] = (side, target, left - 1)
        for r in self._events.between(ctx.row_start, ctx.row_end):
            symbol = self._symbol[r]
            if symbol in trades or ctx.position(symbol):
                continue  # one trade per symbol at a time
            side = float(self._side[r])
            if ctx.enter(symbol, "buy" if side > 0 else "sell", float(self._atr[r])) > 0:
                trades[symbol] = (side, float(self._mean[r]), self.rules.horizon_bars)

    def on_session_close(self, ctx: Context) -> None:
        self._open.clear()  # the intraday book was flattened before the close
