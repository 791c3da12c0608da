"""What the two seed strategies share: a primary rule of `ml.labels` gated by an optional champion model,
batch features in (ts, symbol) order, and the rows of a bar time's events."""

from __future__ import annotations

from abc import abstractmethod
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.config import Config, MeanReversionLabelConfig, TripleBarrierLabelConfig
from hybridtrader.engine.strategy import Strategy
from hybridtrader.market.schema import symbol_codes
from hybridtrader.ml.features import compute_features
from hybridtrader.ml.labels import rule_feature
from hybridtrader.strategy.model import Champion


def session_features(
    bars: pl.DataFrame, names: list[str], session_rows: int, **extra: pl.Expr
) -> pl.DataFrame:
    """`compute_features` for `names` plus the `extra` per-symbol expressions over all of `bars`
    (history first), back in the bars' order, cut to the last `session_rows` rows; with symbol, ts and
    close.

    Speed (the engine calls this once per session): the (symbol, ts) order is a lexsort of integer symbol
    codes and ts, not a string sort; the symbols are an Enum while the features are computed, so
    `over("symbol")` groups by small integers; and only the last `session_rows` rows are gathered back."""
    code = symbol_codes(bars["symbol"])
    order = np.lexsort((bars["ts"].to_physical().to_numpy(), code.to_physical().to_numpy()))  # (symbol, ts)
    frame = bars.with_columns(code)[order]
    feats = compute_features(frame, list(dict.fromkeys(names)))  # sorted already: no second sort
    cols = frame.select("close", *(e.alias(k) for k, e in extra.items()))
    position = np.empty_like(order)
    position[order] = np.arange(len(order))  # row of the bars -> its row in the (symbol, ts) order
    back = position[len(order) - session_rows :]
    out = feats.hstack(cols)[back]
    return out.with_columns(out["symbol"].cast(pl.String))


def gate(events: np.ndarray, frame: pl.DataFrame, champion: Champion | None) -> np.ndarray:
    """The events the champion takes (probability >= its threshold); all of them without a model."""
    if champion is None or not events.any():
        return events
    rows = np.flatnonzero(events)
    x = frame.select(champion.features).to_numpy()[rows]
    taken = events.copy()
    taken[rows] = champion.probability(x) >= champion.threshold
    return taken


class EventRows:
    """Row numbers of a batch's events, looked up by a bar time's row range."""

    def __init__(self, events: np.ndarray) -> None:
        self.rows: list[int] = np.flatnonzero(events).tolist()

    def between(self, start: int, end: int) -> list[int]:
        rows = self.rows
        return rows[bisect_left(rows, start) : bisect_left(rows, end)]


class RuleStrategy(Strategy):
    """A seed strategy: the events of a primary rule (`rules`, a label section of the config), taken when
    the champion model (if any) gives them a probability of at least its threshold."""

    rules: MeanReversionLabelConfig | TripleBarrierLabelConfig

    def __init__(self, config: Config | None = None, champion: Champion | None = None) -> None:
        super().__init__(config)
        self.champion = champion
        self.rules = self.rule_config()
        self._events = EventRows(np.zeros(0, bool))
        self._symbol: list[str] = []
        self._open: dict[str, tuple[Any, ...]] = {}  # symbol -> the open trade (the subclass's fields)

    @abstractmethod
    def rule_config(self) -> MeanReversionLabelConfig | TripleBarrierLabelConfig:
        """The strategy's entry/exit rule parameters (its section of `ml_training.labels`)."""

    def state(self) -> dict[str, Any]:
        """The open trades (symbol -> the subclass's fields: side, targets, bars left)."""
        return {"open": {symbol: list(trade) for symbol, trade in self._open.items()}}

    def restore(self, state: Mapping[str, Any]) -> None:
        self._open = {symbol: tuple(trade) for symbol, trade in state["open"].items()}

    def describe(self) -> dict[str, object]:
        c = self.champion
        model = "none (rules only)" if c is None else f"{c.strategy} v{c.version} (champion)"
        threshold = None if c is None else c.threshold
        return {
            **super().describe(),
            "model": model,
            "threshold": threshold,
            "rules": self.rules.model_dump(),
        }

    def feature_names(self) -> list[str]:
        """The features `features` computes (besides `extra`): the rule's, ATR and the model's."""
        return [rule_feature(self.rules), "atr", *(self.champion.features if self.champion else [])]

    def features(
        self, bars: pl.DataFrame, session_rows: int, **extra: pl.Expr
    ) -> tuple[pl.DataFrame, np.ndarray]:
        """The batch's rows with the rule's feature, ATR, the model's features and `extra`; and the rule
        feature's values (warm-up nulls as 0, which never make an event)."""
        rule = rule_feature(self.rules)
        frame = session_features(bars, self.feature_names(), session_rows, **extra)
        self._symbol = frame["symbol"].to_list()
        return frame, frame[rule].fill_null(0.0).to_numpy()

    def take(self, events: np.ndarray, frame: pl.DataFrame) -> None:
        """Keep the events the model takes, for `on_bars` to look up by bar time."""
        self._events = EventRows(gate(events, frame, self.champion))
