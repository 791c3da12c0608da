"""intraday_mean_reversion: fade a stretched close back to its mean, within the session.

Entry (`ml.labels.mean_reversion_entries`): |zscore_w| >= entry_z on a bar with a positive ATR, side
-sign(z); with a champion model only when its probability reaches the threshold. Exit (`ml.labels.reverted`):
the first later close at or past the entry-time SMA_w, else after `horizon_bars` bars; the intraday book is
flattened before the close, so a trade never crosses sessions. These are the events and exits the model's
labels are made of (`ml.labels.mean_reversion_labels`). Sized by the DynamicSizer on the bar's ATR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.config import Config, MeanReversionLabelConfig
from hybridtrader.engine.strategy import Context
from hybridtrader.ml.labels import mean_reversion_entries, reversion_mean, reverted, rule_feature
from hybridtrader.strategy.model import Champion
from hybridtrader.strategy.rules import RuleStrategy
from hybridtrader.strategy.streaming import FeatureState


class IntradayMeanReversion(RuleStrategy):
    name = "intraday_mean_reversion"
    book = "intraday"
    rules: MeanReversionLabelConfig

    def __init__(self, config: Config | None = None, champion: Champion | None = None) -> None:
        super().__init__(config, champion)
        # warm-up: the rolling windows see the previous session's end, as in training (the z-score and
        # mean exactly; Wilder's ATR has forgotten all but (13/14)^140 < 0.1% of its start)
        self.history_bars = 10 * max(self.rules.window, 14)
        self._open = {}  # symbol -> (side, target, bars left)
        self._stream: FeatureState | None = None  # live: the features carried over (see `prepare`)
        self._entries: list[tuple[str, str, float, float, float]] = []  # (symbol, side, sign, ATR, mean)
        self._extra = {"mean": reversion_mean(self.rules.window)}  # built once, not per batch

    def rule_config(self) -> MeanReversionLabelConfig:
        return self.config.ml_training.labels.mean_reversion

    def extra_features(self) -> dict[str, pl.Expr]:
        return dict(self._extra)

    def prepare(self, bars: pl.DataFrame, session_rows: int) -> pl.DataFrame:
        frame, z = self.features(bars, session_rows, **self.extra_features())
        self._decide(frame, z, frame["atr"].fill_null(0.0).to_numpy(), frame["mean"].to_numpy())
        # live (a batch of one bar time): the session's later bar times are taken by `advance`
        self._stream = FeatureState.start(
            bars, session_rows, self.feature_names(), mean_window=self.rules.window
        )
        return frame

    def advance(self, bars: pl.DataFrame) -> pl.DataFrame | None:
        if self._stream is None:
            return None
        values, frame = self._stream.frame(bars, "mean")
        self._symbol = frame["symbol"].to_list()
        z, atr = values[rule_feature(self.rules)], values["atr"]
        self._decide(frame, np.nan_to_num(z, nan=0.0), np.nan_to_num(atr, nan=0.0), values["mean"])
        return frame

    def _decide(self, frame: pl.DataFrame, z: np.ndarray, atr: np.ndarray, mean: np.ndarray) -> None:
        """The batch's entries from its z-scores and ATRs (nulls as 0, which never make one)."""
        events, side = mean_reversion_entries(z, self.rules)
        self.take(events & (atr > 0), frame)
        self._side = side
        # per event (in row order): what `on_bars` reads of it, as Python objects made once per batch
        rows = self._events.rows
        self._entries = [
            (self._symbol[r], "buy" if s > 0 else "sell", s, a, m)
            for r, s, a, m in zip(
                rows, side[rows].tolist(), atr[rows].tolist(), mean[rows].tolist(), strict=True
            )
        ]

    def restore(self, state: Mapping[str, Any]) -> None:
        super().restore(state)
        self._stream = None  # the features start again from the next batch's history

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        trades = self._open
        for symbol, (side, target, left) in list(trades.items()):
            if left <= 1 or reverted(side, target, ctx.price(symbol)):
                ctx.close(symbol)
                del trades[symbol]
            else:
                trades[symbol] = (side, target, left - 1)
        lo, hi = self._events.span(ctx.row_start, ctx.row_end)
        for symbol, order_side, side, atr, mean in self._entries[lo:hi]:
            if symbol in trades or ctx.position(symbol):
                continue  # one trade per symbol at a time
            if ctx.enter(symbol, order_side, atr) > 0:
                trades[symbol] = (side, mean, self.rules.horizon_bars)

    def on_session_close(self, ctx: Context) -> None:
        self._open.clear()  # the intraday book was flattened before the close
        # The next session's first bar time goes to `prepare` on the history, which starts the features
        # again there: Wilder's ATR is then seeded where a backtest of that session seeds it.
        self._stream = None
