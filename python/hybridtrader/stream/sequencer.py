"""The bar sequence handed to `on_bar`: no holes, no duplicates, whatever the sockets did.

While a source is down (or after a failover) ticks are missed between the last tick seen before the
break (g0) and the first tick after it (g1). Every bar whose interval touches [g0, g1] is *tainted*: the
bars built from the stream for those intervals are dropped and replaced by the provider's REST bars,
fetched once the last tainted interval has closed (plus the watermark) and flagged `backfilled`. Stream
bars after a pending gap wait until its backfill is merged so the per-symbol order holds. Every bar is
emitted at most once per (symbol, ts).

Bars are handled as numpy columns (`Columns`): the batches are small and frequent, and per-call Polars
overhead would dominate; a Polars frame is built once, when a batch is handed to the handlers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from hybridtrader.stream.messages import BAR_SCHEMA, TS, Columns

OUT_SCHEMA = {**BAR_SCHEMA, "partial": pl.Boolean, "backfilled": pl.Boolean}
_FLOATS = ("open", "high", "low", "close", "volume", "vwap")


def empty_bars() -> Columns:
    return Columns.empty(OUT_SCHEMA)


def bar_columns(frame: pl.DataFrame, partial: bool = False, backfilled: bool = False) -> Columns:
    """A frame in the bar schema (from the aggregator or REST) as columns with the two flags."""
    n = frame.height
    if frame.schema["ts"] != TS:
        frame = frame.with_columns(pl.col("ts").cast(TS))
    data = {
        "symbol": frame.get_column("symbol").to_list(),
        "ts": frame.get_column("ts").to_numpy().view(np.int64),
        **{c: frame.get_column(c).to_numpy().astype(np.float64, copy=False) for c in _FLOATS},
        "trades": _counts(frame.get_column("trades")),
        "partial": np.full(n, partial),
        "backfilled": np.full(n, backfilled),
    }
    return Columns(OUT_SCHEMA, data)


def engine_columns(cols: tuple) -> Columns:
    """Bars from the engine (`BarAggregator.flush_columns`) as columns with the two flags off."""
    n = len(cols[0])
    data = dict(zip(BAR_SCHEMA, cols, strict=True))
    data["partial"] = data["backfilled"] = np.zeros(n, dtype=bool)
    return Columns(OUT_SCHEMA, data)


def _counts(s: pl.Series) -> np.ndarray:
    # Series.fill_null runs a whole query (costly per small batch): only when there are nulls (Polygon).
    return (s.fill_null(-1) if s.null_count() else s).to_numpy().astype(np.int64, copy=False)


@dataclass
class Gap:
    """Bars with start in [first, last] (interval starts, ns) are rebuilt from REST; `last` is None
    until the first tick after the break arrives."""

    first: int
    last: int | None = None
    attempts: int = 0
    fetching: bool = False  # its REST request is in flight: a new break opens a new gap


class BarSequencer:
    def __init__(self, every_ns: int) -> None:
        self.every_ns = every_ns
        self.gaps: list[Gap] = []  # ordered
        self._held: list[Columns] = []  # stream bars waiting behind a gap's backfill
        self._last: dict[str, int] = {}  # last emitted bar start per symbol
        self.duplicates = 0  # bars not emitted because (symbol, ts) had been emitted already
        self.tainted = 0  # stream bars dropped because they fell into a gap

    def floor(self, ts: int) -> int:
        return ts - ts % self.every_ns

    # --------------------------------------------------------------------------------------- gaps
    def open_gap(self, last_tick_ts: int) -> None:
        """A break began after a tick at `last_tick_ts` (or the moment streaming began, if none)."""
        first = self.floor(last_tick_ts)
        prev = self.gaps[-1] if self.gaps else None
        if (
            prev is not None
            and not prev.fetching
            and (prev.last is None or prev.last >= first - self.every_ns)
        ):
            # Overlaps or touches the previous gap: one backfill covers both.
            prev.last = None
            prev.first = min(prev.first, first)
            return
        self.gaps.append(Gap(first))

    def close_gap(self, first_tick_ts: int) -> None:
        """Ticks flow again, the first one at `first_tick_ts`."""
        if self.gaps and self.gaps[-1].last is None:
            self.gaps[-1].last = max(self.floor(first_tick_ts), self.gaps[-1].first)

    @property
    def open(self) -> bool:
        return bool(self.gaps) and self.gaps[-1].last is None

    def due(self, now_ts: int, watermark_ns: int) -> Gap | None:
        """The oldest gap whose last interval has closed by `now_ts - watermark`, ready to backfill."""
        if self.gaps and self.gaps[0].last is not None:
            g = self.gaps[0]
            if now_ts - watermark_ns >= g.last + self.every_ns:  # type: ignore[operator]
                return g
        return None

    # -------------------------------------------------------------------------------------- merge
    def _dedupe(self, bars: Columns) -> Columns:
        """In (ts, symbol) order, keep the bars later than the last emitted of their symbol."""
        n = len(bars)
        if n == 0:
            return bars
        sym = np.array(bars.data["symbol"])
        order = np.lexsort((sym, bars.data["ts"]))
        sym, ts = sym[order], bars.data["ts"][order]
        names = sym.tolist()
        # In (ts, symbol) order each symbol's bars come in time order: a bar is new when it is later than
        # the last one emitted before this batch and is not the same (symbol, ts) as the bar just before it.
        prev = np.array([self._last.get(s, -(2**63)) for s in names], dtype=np.int64)
        new = ts > prev
        new[1:] &= (ts[1:] != ts[:-1]) | (sym[1:] != sym[:-1])
        kept = np.flatnonzero(new).tolist()
        self._last.update(zip([names[i] for i in kept], ts[new].tolist(), strict=True))
        keep = order[new]
        self.duplicates += n - keep.size
        return bars.take(keep)

    def stream_bars(self, parts: list[Columns]) -> Columns:
        """Bars from the aggregator (`bar_columns` / `engine_columns`) -> the bars to emit now, in (ts,
        symbol) order."""
        parts = [p for p in parts if len(p)]
        if not parts and not self._held:
            return empty_bars()
        bars = Columns.concat(parts) if parts else empty_bars()
        if not self.gaps:
            if self._held:
                bars = Columns.concat([*self._held, bars])
                self._held.clear()
            return self._dedupe(bars)
        ts = bars.data["ts"]
        taint = np.zeros(len(bars), dtype=bool)
        for g in self.gaps:
            taint |= (ts >= g.first) & (ts <= (g.last if g.last is not None else np.iinfo(np.int64).max))
        self.tainted += int(taint.sum())
        later = ~taint & (ts > self.gaps[0].first)
        if later.any():
            self._held.append(bars.take(later))
        return self._dedupe(bars.take(~taint & ~later))

    def backfilled(self, gap: Gap, rest: pl.DataFrame) -> Columns:
        """Merge the REST bars of `gap` (bar schema) and release the stream bars held behind it."""
        assert gap.last is not None
        self.gaps.remove(gap)
        fill = bar_columns(rest.select(list(BAR_SCHEMA)), backfilled=True)
        ts = fill.data["ts"]
        fill = fill.take((ts >= gap.first) & (ts <= gap.last))
        if self.gaps:
            nxt = self.gaps[0].first
            release = [h.take(h.data["ts"] <= nxt) for h in self._held]
            self._held = [k for k in (h.take(h.data["ts"] > nxt) for h in self._held) if len(k)]
        else:
            release, self._held = self._held, []
        return self._dedupe(Columns.concat([fill, *release]))

    def drain(self) -> Columns:
        """At shutdown: give up on gaps that cannot be backfilled and release what they held."""
        self.gaps.clear()
        held, self._held = self._held, []
        return self._dedupe(Columns.concat(held)) if held else empty_bars()
