"""Historical feeds: closed bars batched by session, from a frame (the synthetic market), from the bar
store (read one session at a time, so memory stays flat in the number of sessions) or from trade ticks
(aggregated to bars by the Rust aggregator, one session at a time)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np
import polars as pl

from hybridtrader.data.bar_store import BarStore
from hybridtrader.engine.events import BarBatch
from hybridtrader.errors import DataError
from hybridtrader.market.bars import aggregate_trades
from hybridtrader.market.calendar import session_bounds, sessions
from hybridtrader.market.schema import BAR_SCHEMA, symbol_codes
from hybridtrader.market.timeconv import NS_PER_MINUTE, epoch_ns, time_runs
from hybridtrader.market.timeframe import Timeframe


def _session_bounds(frame: pl.DataFrame) -> list[tuple[date, int, int]]:
    """(session, first row, rows) of a frame sorted by ts, cut at New York dates (converted once per
    distinct time, not per row: the time zone conversion is the costly part)."""
    ts = frame["ts"]
    starts, ends = time_runs(epoch_ns(ts))
    day = ts.gather(starts).dt.convert_time_zone("America/New_York").dt.date()
    out, k = [], 0
    for n, d in day.rle().struct.unnest().iter_rows():
        start = int(starts[k])
        out.append((d, start, int(ends[k + n - 1]) - start))
        k += n
    return out


def _session_slices(frame: pl.DataFrame) -> Iterator[tuple[date, pl.DataFrame]]:
    """(session, rows) of a frame sorted by ts, cut at New York dates."""
    for d, start, n in _session_bounds(frame):
        yield d, frame.slice(start, n)


def _in_sessions(bars: pl.DataFrame, start: date | None, end: date | None) -> pl.DataFrame:
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    if start is not None:
        bars = bars.filter(day >= start)
    if end is not None:
        bars = bars.filter(day <= end)
    return bars


def _sorted(bars: pl.DataFrame) -> pl.DataFrame:
    """`bars` (BAR_SCHEMA) in (ts, symbol) order with its symbol column as an Enum (`symbol_codes`):
    gathering integer codes costs a third of gathering the strings, and a batch's encoding (`_batch`)
    comes from the codes without hashing a string. `_strings` turns it back, a batch at a time."""
    if dict(bars.schema) != BAR_SCHEMA:
        raise DataError(f"bars: schema {dict(bars.schema)} differs from BAR_SCHEMA {BAR_SCHEMA}")
    codes = symbol_codes(bars["symbol"])
    code, ts = codes.to_physical().to_numpy(), bars["ts"].to_physical().to_numpy()
    # in (ts, symbol) order already: each row after the one before (codes compare as the names do)
    step = np.diff(ts)
    if ((step > 0) | ((step == 0) & (code[1:] > code[:-1]))).all():
        return bars.with_columns(codes)
    # a lexsort on (ts, integer symbol codes) and one gather: about half the cost of a string sort
    return bars.with_columns(codes)[np.lexsort((code, ts))]


def _batch(session: date, rows: pl.DataFrame, every_ns: int) -> BarBatch:
    """A batch of `_sorted` rows, with its symbols' encoding (`BarBatch.names`/`codes`) read off the Enum's
    codes: the distinct codes present, in the Enum's sorted order, renumbered 0, 1, ..."""
    symbols = rows["symbol"]
    assert isinstance(symbols.dtype, pl.Enum)
    feed_codes = symbols.to_physical().to_numpy()
    categories = symbols.dtype.categories
    present = np.flatnonzero(np.bincount(feed_codes, minlength=categories.len()))
    renumber = np.zeros(categories.len(), dtype=np.intp)
    renumber[present] = np.arange(len(present))
    names = categories.gather(present).to_list()
    return BarBatch(session, _strings(rows), every_ns, names, renumber[feed_codes])


def _strings(bars: pl.DataFrame) -> pl.DataFrame:
    """`bars` with its symbol column as strings again (BAR_SCHEMA), after `_sorted`."""
    symbols = bars["symbol"]
    if not isinstance(symbols.dtype, pl.Enum):
        return bars
    # the Enum's names gathered by its codes: a quarter of the cost of a cast (which goes through a query)
    return bars.with_columns(symbols.dtype.categories.gather(symbols.to_physical()).alias("symbol"))


class FrameFeed:
    """Bars already in memory (e.g. `market.synth.generate_market(...).bars_1m`), one batch per session."""

    def __init__(
        self,
        bars: pl.DataFrame,
        every_ns: int = NS_PER_MINUTE,
        start: date | None = None,
        end: date | None = None,
    ) -> None:
        self._rows = _sorted(_in_sessions(bars, start, end))
        self.every_ns = every_ns
        self._bounds = _session_bounds(self._rows)
        self.days = [d for d, _, _ in self._bounds]

    def batches(self) -> Iterator[BarBatch]:
        for session, start, n in self._bounds:
            yield _batch(session, self._rows.slice(start, n), self.every_ns)

    @property
    def bars(self) -> pl.DataFrame:
        """The feed's bars (BAR_SCHEMA) in (ts, symbol) order."""
        return _strings(self._rows)


class StoreFeed:
    """Bars of `symbols` (None: all) from a `BarStore`, read one session at a time."""

    def __init__(
        self, store: BarStore, timeframe: str, start: date, end: date, symbols: list[str] | None = None
    ) -> None:
        self.store, self.tf = store, Timeframe.parse(timeframe)
        if not self.tf.intraday:
            raise DataError(
                f"backtest: timeframe {timeframe} is not intraday (the engine trades intraday bars)"
            )
        self.every_ns = self.tf.nominal_ns
        self.days = sessions(start, end)
        self.symbols = symbols
        if not store.files(self.tf, symbols):
            raise DataError(f"bar store {store.root}: no {self.tf.value} bars for {symbols or 'any symbol'}")

    def batches(self) -> Iterator[BarBatch]:
        for day in self.days:
            open_dt, close_dt = session_bounds(day)
            lf = self.store.scan(self.symbols, self.tf)
            bars = lf.filter((pl.col("ts") >= open_dt) & (pl.col("ts") < close_dt)).collect()
            if bars.height:
                yield BarBatch(day, _strings(_sorted(bars)), self.every_ns)


class TickFeed:
    """Trade ticks (TRADE_SCHEMA) aggregated per session into `every` bars in Rust; only bars
    of the regular session are traded."""

    def __init__(self, trades: pl.DataFrame, every_ns: int = NS_PER_MINUTE) -> None:
        self.trades = trades.sort("ts", maintain_order=True)
        self.every_ns = every_ns
        self.ticks = 0

    def batches(self) -> Iterator[BarBatch]:
        for session, ticks in _session_slices(self.trades):
            open_dt, close_dt = session_bounds(session)
            bars = aggregate_trades(ticks, every=self.every_ns)
            ts = pl.col("ts")
            bars = bars.filter((ts >= open_dt) & (ts < close_dt))
            self.ticks += ticks.height
            if bars.height:
                yield BarBatch(session, _strings(_sorted(bars)), self.every_ns)
