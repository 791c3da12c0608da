"""What the two seed strategies share: a primary rule of `ml.labels` gated by an optional champion model,
batch features in (ts, symbol) order, and the rows of a bar time's events."""

from __future__ import annotations

import sys
from abc import abstractmethod
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.config import Config, MeanReversionLabelConfig, TripleBarrierLabelConfig
from hybridtrader.engine.events import BarBatch, symbol_rows
from hybridtrader.engine.strategy import Strategy
from hybridtrader.errors import DataError
from hybridtrader.market.schema import symbol_codes
from hybridtrader.ml.features import GROUP, ROW, SortedBars, compute_features, feature_inputs
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


def session_features_ahead(
    history: pl.DataFrame | None,
    batches: Sequence[BarBatch],
    names: list[str],
    history_bars: int,
    **extra: pl.Expr,
) -> list[pl.DataFrame]:
    """`session_features` of several sessions in one query: for each batch, what `session_features` gives
    on its bars with the last `history_bars` rows of each symbol before it in front (from `history`, then
    the batches before it), the same bits (each (session, symbol) window is its own group, rows in the
    same order: every rolling window and smoother restarts per group).

    The windows are found with integer codes: the rows of all of it in (symbol, time) order by one lexsort,
    and each window a run [its session's first row - history_bars, its session's last row] of its symbol,
    clipped at the symbol's first row; one gather builds them all, keyed by window number."""
    parts = [b.bars for b in batches]
    encodings = [b.symbol_index() for b in batches]
    if history is not None and history.height:
        hist = symbol_codes(history["symbol"])
        assert isinstance(hist.dtype, pl.Enum)
        parts.insert(0, history)
        encodings.insert(0, (hist.dtype.categories.to_list(), hist.to_physical().to_numpy().astype(np.intp)))
    first = len(parts) - len(batches)  # index of the first batch among the parts
    universe = sorted({s for names, _ in encodings for s in names})
    at = {s: i for i, s in enumerate(universe)}
    code = np.concatenate([np.array([at[s] for s in names], np.intp)[c] for names, c in encodings])
    sizes = np.array([p.height for p in parts])
    offset = np.r_[0, np.cumsum(sizes)]
    part = np.repeat(np.arange(len(parts)), sizes)
    # (symbol, time): the parts are in time order, so a stable sort by symbol (a radix sort on 16 bits)
    order = np.argsort(code.astype(np.uint16 if len(universe) <= 1 << 16 else np.intp), kind="stable")
    c, p = code[order], part[order]
    run = np.flatnonzero(np.r_[True, (c[1:] != c[:-1]) | (p[1:] != p[:-1])])  # (symbol, part) runs
    run_end = np.r_[run[1:], len(c)]
    sym_first = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    sym_first = sym_first[np.searchsorted(sym_first, run, side="right") - 1]  # its symbol's first row
    keep = p[run] >= first  # a window per (session, symbol); history alone makes none
    run, run_end, sym_first = run[keep], run_end[keep], sym_first[keep]
    lo = np.maximum(sym_first, run - history_bars)
    length = run_end - lo
    within = np.arange(length.sum()) - np.repeat(np.r_[0, np.cumsum(length)[:-1]], length)  # row in window
    rows = order[np.repeat(lo, length) + within]  # row in the concatenated parts, window by window
    # the window number stands for the symbol (ascending, so flagged sorted); the strings are not gathered,
    # and the gather reads one chunk (about half the cost of gathering across the parts' chunks)
    key = pl.Series("symbol", np.repeat(np.arange(len(length), dtype=np.uint32), length)).set_sorted()
    names = list(dict.fromkeys(names))
    extra_read = {"close", *(c for e in extra.values() for c in e.meta.root_names())}  # `full` reads close
    columns = tuple(parts[0].columns)
    wanted = {*feature_inputs(tuple(names), columns), *extra_read}
    read = [c for c in columns if c != "symbol" and c in wanted]
    # only the columns the features read are gathered, and the windows are sorted by construction: their
    # row and run numbers (`SortedBars`) come from the window lengths, with no check or sort of the rows
    frame = pl.concat([p[read] for p in parts])[rows]  # p[read]: the columns, with no query planned
    frame.insert_column(0, key)
    _check_unique(frame["ts"], within)
    feats = compute_features(SortedBars(frame, pl.Series(ROW, within), key.alias(GROUP)), names)
    full = feats.hstack(frame.select("close", *(e.alias(k) for k, e in extra.items())))
    # the session rows (each a row of a batch once), back to their batch's order in one scatter
    in_session = np.flatnonzero(within >= np.repeat(run - lo, length))
    back = np.empty(offset[-1] - offset[first], dtype=np.intp)
    back[rows[in_session] - offset[first]] = in_session
    out = []
    for k, batch in enumerate(batches, start=first):
        frame_k = full[back[offset[k] - offset[first] : offset[k + 1] - offset[first]]]
        frame_k.replace_column(0, batch.bars["symbol"])
        out.append(frame_k)
    return out


def _check_unique(ts: pl.Series, within: np.ndarray) -> None:
    """The check `compute_features` makes on bars it sorts itself: no two rows of a window (one symbol,
    in time order) at the same ts."""
    t = ts.to_physical().to_numpy()
    if ((t[1:] == t[:-1]) & (within[1:] > 0)).any():
        raise DataError("bars: duplicate (symbol, ts) rows")


def batch_key(bars: pl.DataFrame, rows: int) -> tuple[Any, Any, int]:
    """Which batch the last `rows` rows of `bars` are (what `prepare_ahead` keys its work by): their first
    and last ts and their number (batches of a run do not overlap in time)."""
    ts = bars["ts"]
    return ts[-rows], ts[-1], rows


def gate(events: np.ndarray, frame: pl.DataFrame, champion: Champion | None) -> np.ndarray:
    """The events the champion takes (probability >= its threshold); all of them without a model."""
    if champion is None or not events.any():
        return events
    rows = np.flatnonzero(events)
    x = frame.select(champion.features).to_numpy()[rows]
    taken = events.copy()
    taken[rows] = champion.probability(x) >= champion.threshold
    return taken


NO_ROW = sys.maxsize  # a row past every batch's last (`Strategy.wakes_at`: no more bar times to act at)


class EventRows:
    """Row numbers of a batch's events, looked up by a bar time's row range."""

    def __init__(self, events: np.ndarray) -> None:
        self.rows: list[int] = np.flatnonzero(events).tolist()

    def between(self, start: int, end: int) -> list[int]:
        lo, hi = self.span(start, end)
        return self.rows[lo:hi]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The positions in `rows` of the events in rows start..end."""
        rows = self.rows
        return bisect_left(rows, start), bisect_left(rows, end)

    def first_from(self, row: int) -> int:
        """The first event row at or after `row` (`NO_ROW` when none)."""
        rows = self.rows
        k = bisect_left(rows, row)
        return rows[k] if k < len(rows) else NO_ROW


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
        # `features` of the next batches (see `prepare_ahead`) and their symbols' encoding, by batch_key
        self._ahead: dict[tuple[Any, Any, int], tuple[pl.DataFrame, tuple[list[str], np.ndarray]]] = {}

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

    def extra_features(self) -> dict[str, pl.Expr] | None:
        """The per-symbol expressions the subclass's `prepare` passes to `features` as `extra`, when it
        lets `prepare_ahead` compute them for several sessions at once (None: it does not)."""
        return None

    def prepare_ahead(self, history: pl.DataFrame | None, batches: Sequence[BarBatch]) -> None:
        """`features` of all `batches` in one query (`session_features_ahead`), for `prepare` to take in
        order; only for a subclass that names its `extra_features`."""
        extra = self.extra_features()
        if extra is not None:
            names = self.feature_names()
            frames = session_features_ahead(history, batches, names, self.history_bars, **extra)
            # replaces what is left of the last group: batches `advance` took, never prepared
            self._ahead = {
                batch_key(b.bars, b.bars.height): (f, b.symbol_index())
                for b, f in zip(batches, frames, strict=True)
            }

    def features(
        self, bars: pl.DataFrame, session_rows: int, **extra: pl.Expr
    ) -> tuple[pl.DataFrame, np.ndarray]:
        """The batch's rows with the rule's feature, ATR, the model's features and `extra`; and the rule
        feature's values (warm-up nulls as 0, which never make an event). A batch handed over to
        `prepare_ahead` takes what it computed there."""
        rule = rule_feature(self.rules)
        ahead = self._ahead.pop(batch_key(bars, session_rows), None) if self._ahead else None
        if ahead is None:
            frame = session_features(bars, self.feature_names(), session_rows, **extra)
            self._symbol = frame["symbol"].to_list()
        else:
            frame, (names, codes) = ahead
            self._symbol = symbol_rows(names, codes).tolist()
        return frame, frame[rule].fill_null(0.0).to_numpy()

    def wakes_at(self, row: int) -> int:
        """Every bar time while a trade is open (`on_bars` looks at each for its exit), else the next event
        row (`on_bars` of the seed strategies acts on open trades and events only)."""
        return row if self._open else self._events.first_from(row)

    def take(self, events: np.ndarray, frame: pl.DataFrame) -> None:
        """Keep the events the model takes, for `on_bars` to look up by bar time."""
        self._events = EventRows(gate(events, frame, self.champion))
