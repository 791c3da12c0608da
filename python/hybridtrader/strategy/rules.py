"""What the two seed strategies share: batch features in (ts, symbol) order, model gating, and the rows
of a bar time's events."""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
import polars as pl

from hybridtrader.ml.features import compute_features, normalise_bars
from hybridtrader.strategy.model import Champion


def session_features(
    bars: pl.DataFrame, names: list[str], session_rows: int, **extra: pl.Expr
) -> pl.DataFrame:
    """`compute_features` for `names` plus the `extra` per-symbol expressions over all of `bars`
    (history first), back in (ts, symbol) order, cut to the last `session_rows` rows; with symbol, ts
    and close."""
    frame = normalise_bars(bars)
    feats = compute_features(frame, list(dict.fromkeys(names)))
    cols = frame.select(pl.col("close"), *(e.alias(k) for k, e in extra.items()))
    return feats.hstack(cols).sort("ts", "symbol").tail(session_rows)


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
