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

import numpy as np
import polars as pl

from hybridtrader.config import Config
from hybridtrader.ml.labels import barrier_touch, barrier_vol, rule_feature, trend_entries
from hybridtrader.strategy.base import Context, Strategy
from hybridtrader.strategy.model import Champion
from hybridtrader.strategy.rules import EventRows, gate, session_features


class SwingTrendFollowing(Strategy):
    name = "swing_trend_following"
    book = "swing"
    history_sessions = 1  # trend_strength_390 and the 100-bar volatility warm up on the previous session

    def __init__(self, config: Config | None = None, champion: Champion | None = None) -> None:
        super().__init__(config)
        self.champion = champion
        self.rules = self.config.ml_training.labels.triple_barrier
        self._open: dict[
            str, tuple[float, float, float, int]
        ] = {}  # symbol -> (side, entry, trgt, bars left)
        self._seen: dict[str, int] = {}  # bars of each symbol before this batch
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
        frame = session_features(bars, names, session_rows, vol=barrier_vol(self.rules))
        frame = frame.with_columns(row=pl.int_range(pl.len()).over("symbol"))
        seen = pl.DataFrame(
            {"symbol": list(self._seen), "seen": list(self._seen.values())},
            schema={"symbol": pl.String, "seen": pl.Int64},
        )
        row = frame.join(seen, on="symbol", how="left", maintain_order="left").select(
            pl.col("row") + pl.col("seen").fill_null(0)
        )
        for symbol, n in frame.group_by("symbol").len().iter_rows():
            self._seen[symbol] = self._seen.get(symbol, 0) + n
        strength = frame[rule].fill_null(0.0).to_numpy()
        vol = frame["vol"].fill_null(0.0).to_numpy()
        events, side = trend_entries(strength, row.to_series().to_numpy(), self.rules)
        self._events = EventRows(gate(events & (vol > 0), frame, self.champion))
        self._symbol = frame["symbol"].to_list()
        self._side, self._trgt = side, vol * math.sqrt(self.rules.horizon_bars)
        self._atr = frame["atr"].fill_null(0.0).to_numpy()
        return frame

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
