"""The bar sequence handed to `on_bar`: no holes, no duplicates, whatever the sockets did.

While a source is down (or after a failover) ticks are missed between the last tick seen before the
break (g0) and the first tick after it (g1). Every bar whose interval touches [g0, g1] is *tainted*: the
bars built from the stream for those intervals are dropped and replaced by the provider's REST bars,
fetched once the last tainted interval has closed (plus the watermark) and flagged `backfilled`. Stream
bars after a pending gap wait until its backfill is merged so the per-symbol order holds. Every bar is
emitted at most once per (symbol, ts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from hybridtrader.stream.messages import BAR_SCHEMA

OUT_SCHEMA = {**BAR_SCHEMA, "partial": pl.Boolean, "backfilled": pl.Boolean}


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=OUT_SCHEMA)


@dataclass
class Gap:
    """Bars with start in [first, last] (interval starts, ns) are rebuilt from REST; `last` is None
    until the first tick after the break arrives."""

    first: int
    last: int | None = None
    attempts: int = 0
    fetching: bool = False  # its REST request is in flight: a new break opens a new gap

    def covers(self, ts: int) -> bool:
        return ts >= self.first and (self.last is None or ts <= self.last)


class BarSequencer:
    def __init__(self, every_ns: int) -> None:
        self.every_ns = every_ns
        self.gaps: list[Gap] = []  # ordered, disjoint
        self._held: list[pl.DataFrame] = []  # stream bars waiting behind a gap's backfill
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
    def _tainted(self, ts: pl.Series) -> pl.Series:
        mask = pl.Series([False] * len(ts))
        phys = ts.dt.epoch("ns")
        for g in self.gaps:
            m = phys >= g.first
            if g.last is not None:
                m = m & (phys <= g.last)
            mask = mask | m
        return mask

    def _dedupe(self, bars: pl.DataFrame) -> pl.DataFrame:
        """Keep bars later than the last emitted of their symbol; update the per-symbol high marks.
        Bar batches are small (a few per symbol), so a plain loop beats building a join per batch."""
        if bars.is_empty():
            return bars
        bars = bars.sort("ts", "symbol")
        last = self._last
        keep = np.ones(len(bars), dtype=bool)
        for i, (sym, ts) in enumerate(
            zip(bars["symbol"].to_list(), bars["ts"].dt.epoch("ns").to_list(), strict=True)
        ):
            prev = last.get(sym)
            if prev is not None and ts <= prev:
                keep[i] = False
            else:
                last[sym] = ts
        if keep.all():
            return bars
        self.duplicates += int((~keep).sum())
        return bars.filter(pl.Series(keep))

    def stream_bars(self, bars: pl.DataFrame, partial: bool = False) -> pl.DataFrame:
        """Bars from the aggregator (schema BAR_SCHEMA) -> the bars to emit now, in (ts, symbol) order."""
        if bars.is_empty() and not self._held:
            return empty_bars()
        bars = bars.with_columns(pl.lit(partial).alias("partial"), pl.lit(False).alias("backfilled"))
        if self.gaps and not bars.is_empty():
            taint = self._tainted(bars["ts"])
            self.tainted += int(taint.sum())
            bars = bars.filter(~taint)
        if self.gaps:
            first = self.gaps[0].first
            held = bars.filter(pl.col("ts").dt.epoch("ns") > first)
            if not held.is_empty():
                self._held.append(held)
            bars = bars.filter(pl.col("ts").dt.epoch("ns") <= first)
            return self._dedupe(bars)
        if self._held:
            bars = pl.concat([*self._held, bars])
            self._held.clear()
        return self._dedupe(bars)

    def backfilled(self, gap: Gap, rest_bars: pl.DataFrame) -> pl.DataFrame:
        """Merge the REST bars of `gap` (BAR_SCHEMA) and release the stream bars held behind it."""
        self.gaps.remove(gap)
        phys = pl.col("ts").dt.epoch("ns")
        fill = (
            rest_bars.select(list(BAR_SCHEMA))
            .cast(BAR_SCHEMA)  # type: ignore[arg-type]
            .filter((phys >= gap.first) & (phys <= gap.last))
            .with_columns(pl.lit(False).alias("partial"), pl.lit(True).alias("backfilled"))
        )
        if self.gaps:
            nxt = self.gaps[0].first
            release = [h.filter(phys <= nxt) for h in self._held]
            self._held = [k for k in (h.filter(phys > nxt) for h in self._held) if not k.is_empty()]
        else:
            release, self._held = self._held, []
        return self._dedupe(pl.concat([fill, *release]) if release else fill)

    def drain(self) -> pl.DataFrame:
        """At shutdown: give up on gaps that cannot be backfilled and release what they held."""
        self.gaps.clear()
        held, self._held = self._held, []
        return self._dedupe(pl.concat(held)) if held else empty_bars()
