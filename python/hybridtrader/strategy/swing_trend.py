"""swing_trend_following: ride a strong trend for up to `horizon_bars` bars, across sessions.

Entry (`ml.labels.trend_entries`): |trend_strength_w| >= entry_strength on every event_spacing_bars-th bar
of the symbol (counted from the symbol's first bar in the run), side sign(strength); with a champion
model only when its probability reaches the threshold. Exit (`ml.labels.barrier_touch`): the side-adjusted
log return since entry reaches +profit_take x trgt or -stop_loss x trgt (trgt = `ml.labels.barrier_vol` x
sqrt(horizon_bars) at entry), else after `horizon_bars` bars: the triple barrier the labels are made of.
Swing book: held overnight, not flattened at the close.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.config import Config, TripleBarrierLabelConfig
from hybridtrader.engine.strategy import Context
from hybridtrader.ml.labels import barrier_touch, barrier_vol, rule_feature, trend_entries
from hybridtrader.strategy.model import Champion
from hybridtrader.strategy.rules import RuleStrategy
from hybridtrader.strategy.streaming import FeatureState


class SwingTrendFollowing(RuleStrategy):
    name = "swing_trend_following"
    book = "swing"
    rules: TripleBarrierLabelConfig

    def __init__(self, config: Config | None = None, champion: Champion | None = None) -> None:
        super().__init__(config, champion)
        # warm-up of trend_strength (EMAs of up to trend_window bars) and of the barrier volatility
        self.history_bars = 2 * max(self.rules.trend_window, self.rules.vol_span)
        self._open = {}  # symbol -> (side, entry, trgt, bars left)
        self._seen: dict[str, int] = {}  # bars of each symbol before this batch
        self._stream: FeatureState | None = None  # live: the features carried over (see `prepare`)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "seen": dict(self._seen)}

    def restore(self, state: Mapping[str, Any]) -> None:
        super().restore(state)
        self._seen = {symbol: int(n) for symbol, n in state["seen"].items()}
        self._stream = None  # the features start again from the next batch's history

    def rule_config(self) -> TripleBarrierLabelConfig:
        return self.config.ml_training.labels.triple_barrier

    def prepare(self, bars: pl.DataFrame, session_rows: int) -> pl.DataFrame:
        frame, strength = self.features(bars, session_rows, vol=barrier_vol(self.rules))
        within = frame.select("symbol", row=pl.int_range(pl.len()).over("symbol"))
        seen = pl.DataFrame(
            {"symbol": list(self._seen), "seen": list(self._seen.values())},
            schema={"symbol": pl.String, "seen": pl.Int64},
        )
        row = within.join(seen, on="symbol", how="left", maintain_order="left").select(
            pl.col("row") + pl.col("seen").fill_null(0)
        )
        for symbol, n in frame.group_by("symbol").len().iter_rows():
            self._seen[symbol] = self._seen.get(symbol, 0) + n
        vol, atr = (frame[c].fill_null(0.0).to_numpy() for c in ("vol", "atr"))
        self._decide(frame, strength, row.to_series().to_numpy(), vol, atr)
        # live (a batch of one bar time): the session's later bar times are taken by `advance`
        self._stream = FeatureState.start(
            bars, session_rows, self.feature_names(), vol_span=self.rules.vol_span
        )
        return frame

    def advance(self, bars: pl.DataFrame) -> pl.DataFrame | None:
        if self._stream is None:
            return None
        values, symbols = self._stream.take(bars)
        self._symbol = symbols
        frame = self._stream.features_frame(bars, values, "vol")
        seen = self._seen
        row = np.fromiter((seen.get(s, 0) for s in symbols), np.int64, len(symbols))
        for s in symbols:
            seen[s] = seen.get(s, 0) + 1
        strength, vol, atr = (
            np.nan_to_num(values[c], nan=0.0) for c in (rule_feature(self.rules), "vol", "atr")
        )
        self._decide(frame, strength, row, vol, atr)
        return frame

    def _decide(
        self, frame: pl.DataFrame, strength: np.ndarray, row: np.ndarray, vol: np.ndarray, atr: np.ndarray
    ) -> None:
        """The batch's entries from its trend strengths, each row's index within its symbol in the run,
        and its barrier volatility and ATR (nulls as 0, which never make an entry)."""
        events, side = trend_entries(strength, row, self.rules)
        self.take(events & (vol > 0), frame)
        self._side, self._trgt = side, vol * math.sqrt(self.rules.horizon_bars)
        self._atr = atr

    def on_session_close(self, ctx: Context) -> None:
        # The next session's first bar time goes to `prepare` on the history, which starts the features
        # again there, where a backtest of that session starts them.
        self._stream = None

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        trades = self._open
        for symbol, (side, entry, trgt, left) in list(trades.items()):
            touched, _ = barrier_touch(side, entry, trgt, ctx.price(symbol), self.rules)
            if left <= 1 or touched:
                ctx.close(symbol)
                del trades[symbol]
            else:
                trades[symbol] = (side, entry, trgt, left - 1)
        for r in self._events.between(ctx.row_start, ctx.row_end):
            symbol = self._symbol[r]
            if symbol in trades or ctx.position(symbol) or self._atr[r] <= 0:
                continue
            side = float(self._side[r])
            if ctx.enter(symbol, "buy" if side > 0 else "sell", float(self._atr[r])) > 0:
                trades[symbol] = (side, ctx.price(symbol), float(self._trgt[r]), self.rules.horizon_bars)
