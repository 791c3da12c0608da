"""Ticks into bars over whole Polars frames, running the Rust bar engine with the GIL released.

Bars follow the DESIGN.md conventions: time bars cover ``[start, start + every)`` and are labelled by
``start`` (aligned to ``origin``, the epoch by default); tick, volume and dollar bars are labelled by their
first trade's timestamp, and a volume (dollar) bar closes after the trade that reaches the threshold (trades
are never split). The last bar of each symbol is included even if its interval is not over.

Unsorted input is fine: rows are ordered stably by ``(symbol, ts)`` inside the engine, so rows with equal
timestamps keep their input order (which decides open and close). Invalid ticks (non-finite or
non-positive prices, negative or NaN sizes; for quotes also crossed or non-positive bid/ask) are dropped,
counted, and reported by a logged warning.

The engine reads the symbol column in the cheapest form that is exact: run lengths, found from the
column's Arrow string views, when each symbol's rows are contiguous (a store sorted by symbol), else two
independent 64-bit hashes per row interned in the same pass (a collision of both is detected and falls
back to exact categorical codes). Large batches run on two threads, split by symbol or, for time bars, at
an interval boundary; the bars are the same as on one thread. `push_frame` feeds a streaming
`BarAggregator` from a frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from hybridtrader import _core
from hybridtrader.market.frames import build_frame
from hybridtrader.market.schema import BAR_SCHEMA, TS

log = logging.getLogger(__name__)

TRADE_BAR_SCHEMA: dict[str, pl.DataType] = BAR_SCHEMA

QUOTE_BAR_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "ts": TS,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "bid": pl.Float64(),
    "ask": pl.Float64(),
    "spread_bps_mean": pl.Float64(),
    "spread_bps_last": pl.Float64(),
    "quotes": pl.Int64(),
}

Symbols = Sequence[str] | pl.Series
Columns = Sequence[np.ndarray]

_SCHEMAS = {"trades": TRADE_BAR_SCHEMA, "quotes": QUOTE_BAR_SCHEMA}
_VALUE_COLUMNS = {"trades": ("price", "size"), "quotes": ("bid", "ask")}
_EMPTY = {source: pl.DataFrame(schema=schema) for source, schema in _SCHEMAS.items()}
# Two independent seeds: symbols are merged only if both 64-bit hashes collide.
_HASH_SEEDS = (0, 0x9E3779B97F4A7C15)


def _bars_frame(source: str, symbol: Symbols, columns: Columns) -> pl.DataFrame:
    """Wraps the engine's numpy columns (everything after ``symbol``) into a bar frame without copying."""
    if len(columns[0]) == 0:
        return _EMPTY[source].clear()
    schema = _SCHEMAS[source]
    return build_frame(schema, dict(zip(schema, [symbol, *columns], strict=True)))


class BarAggregator(_core.BarAggregatorCore):
    """Streaming bars for many symbols from trades or quotes (the Rust engine in `rust/src/bars.rs`).

    Give exactly one rule: ``every`` (time bars, an interval such as ``"1s"``, ``"5m"``, ``"1h"``, ``"1d"``,
    ``"1h30m"``, or int nanoseconds; interval ``[start, start + every)`` labelled by ``start``, aligned to
    ``origin`` in UTC ns, the epoch by default), ``ticks`` (every N ticks), ``volume`` (every V shares) or
    ``dollars`` (every D of notional). Volume/dollar bars close right after the trade that reaches the
    threshold (trades are never split); tick/volume/dollar bars are labelled by their first tick's ts.
    Quote aggregators (``source="quotes"``) support ``every`` and ``ticks``.

    Invalid ticks are rejected and counted (non-finite or non-positive price, negative or NaN size; for
    quotes non-positive or non-finite bid/ask and crossed quotes bid > ask). A tick older than its
    symbol's current bar (or than the end of a bar already emitted by `flush`) is counted as late and
    dropped; ticks out of order inside the current bar are kept, open/close following timestamps.
    Timestamps are int nanoseconds since the epoch, UTC.

    The engine hands out bars as columns (`BarAggregatorCore`); the methods here wrap them into frames
    in the bar schema, in completion order.
    """

    def push_many(self, symbols: Symbols | np.ndarray, ts: np.ndarray, price: np.ndarray,
                  size: np.ndarray) -> pl.DataFrame:
        """Adds trades in order (same as `push` for each, GIL released) and returns the completed bars.
        ``symbols`` are ids from `intern` (fastest) or strings; for a Polars frame use `push_frame`."""
        return self._frame(self.push_many_columns(symbols, ts, price, size))

    def push_quotes_many(self, symbols: Symbols | np.ndarray, ts: np.ndarray, bid: np.ndarray,
                         ask: np.ndarray) -> pl.DataFrame:
        """`push_many` for quotes; returns completed quote bars."""
        return self._frame(self.push_quotes_many_columns(symbols, ts, bid, ask))

    def flush(self, now_ts: int) -> pl.DataFrame:
        """Emits every time bar whose interval has ended (end <= now_ts), so bars come out on time without
        a later tick. Later ticks for a flushed interval are late. Count-based bars are left open."""
        return self._frame(self.flush_columns(now_ts))

    def close(self) -> pl.DataFrame:
        """Emits every open bar, partial ones included (end of stream)."""
        return self._frame(self.close_columns())

    def _frame(self, columns: tuple[Any, ...] | None) -> pl.DataFrame:
        if columns is None:
            return _EMPTY[self.source].clear()
        return _bars_frame(self.source, columns[0], columns[1:])


def rollup() -> list[pl.Expr]:
    """Aggregations of a group of bars into one coarser bar: first open, max high, min low, last close,
    summed volume and trades, volume-weighted vwap."""
    return [
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        pl.col("volume").sum(),
        ((pl.col("vwap") * pl.col("volume")).sum() / pl.col("volume").sum()).alias("vwap"),
        pl.col("trades").sum(),
    ]


def aggregate_trades(
    trades: pl.DataFrame,
    every: str | int | None = None,
    ticks: int | None = None,
    volume: float | None = None,
    dollars: float | None = None,
    origin: int | datetime | None = None,
) -> pl.DataFrame:
    """Aggregates trades (``symbol, ts, price, size``) into bars ``symbol, ts, open, high, low, close,
    volume, vwap, trades`` sorted by symbol and ts.

    Give exactly one of ``every`` (interval such as ``"1m"``, ``"5s"``, ``"1h"``, ``"1d"``, ``"1h30m"``, or
    int nanoseconds), ``ticks`` (every N trades), ``volume`` (every V shares) or ``dollars`` (every D of
    notional). ``origin`` (int ns or an aware datetime) aligns time bars; default the epoch.
    """
    return _aggregate("trades", trades, every, ticks, volume, dollars, origin)


def aggregate_quotes(
    quotes: pl.DataFrame,
    every: str | int | None = None,
    ticks: int | None = None,
    origin: int | datetime | None = None,
) -> pl.DataFrame:
    """Aggregates quotes (``symbol, ts, bid, ask``; other columns ignored) into bars ``symbol, ts, open,
    high, low, close`` (of the mid), ``bid, ask`` (last), ``spread_bps_mean, spread_bps_last`` (spread
    ``(ask - bid) / mid * 1e4``), ``quotes`` (count), sorted by symbol and ts.

    Time bars (``every``) or tick bars (``ticks``: every N quotes); ``origin`` as in `aggregate_trades`.
    Crossed quotes (bid > ask) and non-positive or non-finite bid/ask are rejected.
    """
    return _aggregate("quotes", quotes, every, ticks, None, None, origin)


def push_frame(aggregator: BarAggregator, ticks: pl.DataFrame) -> pl.DataFrame:
    """Streams a Polars frame of ticks (the trade or quote schema, per ``aggregator.source``) through a
    `BarAggregator` and returns the bars it completed. Symbols are mapped to the aggregator's ids in bulk,
    so this costs about as much as `BarAggregator.push_many` on integer ids. Ticks must be in time order per
    symbol across calls (older ones are counted as late and dropped, as for every streaming push)."""
    source = aggregator.source
    symbol, ts, a, b = _columns(ticks, _VALUE_COLUMNS[source])
    codes, names = _symbol_codes(symbol)
    ids = aggregator.intern(names.to_list())[codes]
    if source == "quotes":
        return aggregator.push_quotes_many(ids, ts, a, b)
    return aggregator.push_many(ids, ts, a, b)


def _aggregate(
    source: str,
    frame: pl.DataFrame,
    every: str | int | None,
    ticks: int | None,
    volume: float | None,
    dollars: float | None,
    origin: int | datetime | None,
) -> pl.DataFrame:
    value_columns = _VALUE_COLUMNS[source]
    symbol, ts, a, b = _columns(frame, value_columns)
    rule = dict(every=every, ticks=ticks, volume=volume, dollars=dollars, origin=_origin_ns(origin))
    runs = _symbol_runs(symbol)
    if runs is not None:
        # Rows grouped by symbol (as a store sorted by symbol holds them): one run per symbol.
        lengths, names = runs
        bar_codes, columns, stats = _core.aggregate_bars_runs(source, lengths, ts, a, b, **rule)
    else:
        # Symbols enter the engine as two hashes per row, interned in the same pass as the aggregation.
        hashed = _core.aggregate_bars_hashed(source, *_symbol_hashes(symbol), ts, a, b, **rule)
        if hashed is None:
            codes, names = _exact_codes(symbol)
            bar_codes, columns, stats = _core.aggregate_bars(source, codes, len(names), ts, a, b, **rule)
        else:
            bar_codes, first_rows, columns, stats = hashed
            names = symbol.gather(first_rows)
    if not names.is_sorted():
        # Codes follow first appearance; bars must follow symbol names.
        rank = np.empty(len(names), dtype=np.uint32)
        rank[names.arg_sort().to_numpy()] = np.arange(len(names), dtype=np.uint32)
        perm = _core.bar_order(bar_codes, rank)
        bar_codes, columns = bar_codes[perm], tuple(col[perm] for col in columns)
    if stats["rejected"]:
        log.warning(
            "%s: dropped %d of %d rows with invalid %s", source, stats["rejected"], stats["ticks"],
            " / ".join(value_columns),
        )
    return _bars_frame(source, names.gather(bar_codes), columns)


def _symbol_runs(symbol: pl.Series) -> tuple[np.ndarray, pl.Series] | None:
    """Run lengths and names if every symbol's rows are contiguous, else None (also when a symbol is
    longer than 12 bytes). The engine reads the column's Arrow string views without copying them: a
    symbol of up to 12 bytes is inline in its 16-byte view, so comparing views compares symbols."""
    import pyarrow as pa  # here, not at the top: every command imports this module, few need pyarrow

    views = symbol.rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
    buffers = views.buffers()
    if not pa.types.is_string_view(views.type) or buffers[1] is None:
        return None
    start = 2 * views.offset
    runs = _core.bar_view_runs(np.frombuffer(buffers[1], dtype=np.uint64)[start : start + 2 * len(views)])
    if runs is None:
        return None
    lengths, first_rows = runs
    return lengths, symbol.gather(first_rows)


def _columns(
    frame: pl.DataFrame, value_columns: tuple[str, str]
) -> tuple[pl.Series, np.ndarray, np.ndarray, np.ndarray]:
    """Validated engine inputs: symbol series, ts as int64 UTC ns, the two value columns as float64."""
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    if not isinstance(frame, pl.DataFrame):
        raise ValueError(f"expected a Polars DataFrame, got {type(frame).__name__}")
    needed = ("symbol", "ts", *value_columns)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"input is missing column(s) {missing}; it has {frame.columns}")
    symbol = frame["symbol"]
    if not isinstance(symbol.dtype, pl.String | pl.Categorical | pl.Enum):
        raise ValueError(f"column 'symbol' must be strings, got {symbol.dtype}")
    symbol = symbol.cast(pl.String)
    ts = frame["ts"]
    if not isinstance(ts.dtype, pl.Datetime):
        raise ValueError(f"column 'ts' must be Datetime (UTC), got {ts.dtype}")
    if ts.dtype.time_zone is None:
        raise ValueError(
            "column 'ts' has no time zone; timestamps must be timezone-aware "
            "(e.g. .dt.replace_time_zone('UTC') if they are UTC)"
        )
    for name, col in (("symbol", symbol), ("ts", ts)):
        if col.null_count():
            raise ValueError(f"column {name!r} has {col.null_count()} null value(s)")
    ts_ns = ts.dt.convert_time_zone("UTC").dt.cast_time_unit("ns").to_physical().to_numpy()
    values = []
    for name in value_columns:
        col = frame[name]
        if not col.dtype.is_numeric():
            raise ValueError(f"column {name!r} must be numeric, got {col.dtype}")
        # Nulls become NaN, which the engine rejects and counts.
        values.append(col.cast(pl.Float64).to_numpy())
    return symbol, ts_ns, values[0], values[1]


def _symbol_hashes(symbol: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes per row; symbols merge only if both collide, which the engine
    detects (it then returns None and the exact path is taken)."""
    h1, h2 = (symbol.hash(seed).to_numpy() for seed in _HASH_SEEDS)
    return h1, h2


def _exact_codes(symbol: pl.Series) -> tuple[np.ndarray, pl.Series]:
    names = symbol.unique(maintain_order=True)
    return symbol.cast(pl.Enum(names)).to_physical().cast(pl.UInt32).to_numpy(), names


def _symbol_codes(symbol: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Dense uint32 codes of a string column and the name of each code (first-seen order).

    Hashing with Polars and interning the hashes in Rust is several times faster than a categorical cast.
    """
    coded = _core.bar_codes_from_hashes(*_symbol_hashes(symbol))
    if coded is None:
        return _exact_codes(symbol)
    codes, first_rows = coded
    return codes, symbol.gather(first_rows)


def _origin_ns(origin: int | datetime | None) -> int:
    if origin is None:
        return 0
    if isinstance(origin, datetime):
        if origin.tzinfo is None:
            raise ValueError(f"origin must be timezone-aware, got {origin!r}")
        return pl.Series([origin]).dt.convert_time_zone("UTC").dt.cast_time_unit("ns").to_physical()[0]
    if isinstance(origin, int):
        return origin
    raise ValueError(f"origin must be int nanoseconds or an aware datetime, got {origin!r}")
