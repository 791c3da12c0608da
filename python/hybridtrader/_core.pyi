"""Type stubs for the Rust extension `hybridtrader._core`."""

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

__version__: str

TradeBar = tuple[str, int, float, float, float, float, float, float, int]
"""(symbol, ts ns, open, high, low, close, volume, vwap, trades)."""

QuoteBar = tuple[str, int, float, float, float, float, float, float, float, float, int]
"""(symbol, ts ns, open, high, low, close (mid), bid, ask, spread_bps_mean, spread_bps_last, quotes)."""

class BarAggregator:
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
    """

    def __init__(
        self,
        *,
        every: str | int | None = None,
        ticks: int | None = None,
        volume: float | None = None,
        dollars: float | None = None,
        origin: int = 0,
        source: Literal["trades", "quotes"] = "trades",
    ) -> None: ...
    @property
    def source(self) -> Literal["trades", "quotes"]:
        """ "trades" or "quotes"."""
    @property
    def symbols(self) -> list[str]:
        """Known symbols; position = id."""
    def intern(self, names: Iterable[str]) -> npt.NDArray[np.uint32]:
        """Ids of ``names`` (new symbols get new ids), for the fast integer-id path of `push_many`."""
    def push(self, symbol: str, ts: int, price: float, size: float) -> tuple[TradeBar, ...]:
        """Adds one trade; returns the bars it completed (usually the empty tuple). About 100 ns."""
    def push_quote(self, symbol: str, ts: int, bid: float, ask: float) -> tuple[QuoteBar, ...]:
        """Adds one quote; returns the quote bars it completed (usually the empty tuple)."""
    def push_many(
        self,
        symbols: npt.NDArray[np.integer] | npt.NDArray[np.str_] | npt.NDArray[np.object_] | Sequence[str],
        ts: npt.ArrayLike,
        price: npt.ArrayLike,
        size: npt.ArrayLike,
    ) -> pl.DataFrame:
        """Adds trades in order (same as `push` for each, GIL released) and returns the completed bars as a
        frame in the bar schema (in completion order). ``symbols`` are ids from `intern` (fastest) or
        strings; for a Polars frame use `hybridtrader.market.push_frame`."""
    def push_quotes_many(
        self,
        symbols: npt.NDArray[np.integer] | npt.NDArray[np.str_] | npt.NDArray[np.object_] | Sequence[str],
        ts: npt.ArrayLike,
        bid: npt.ArrayLike,
        ask: npt.ArrayLike,
    ) -> pl.DataFrame:
        """`push_many` for quotes; returns completed quote bars."""
    def flush(self, now_ts: int) -> pl.DataFrame:
        """Emits every time bar whose interval has ended (end <= now_ts), so bars come out on time without a
        later tick. Later ticks for a flushed interval are late. Count-based bars are left open."""
    def close(self) -> pl.DataFrame:
        """Emits every open bar, partial ones included (end of stream)."""
    def stats(self) -> dict[str, int]:
        """Counts: ``ticks`` offered, ``bars`` emitted, ``late`` dropped, ``rejected`` invalid."""

def bar_codes_from_hashes(
    h1: npt.NDArray[np.uint64], h2: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]] | None:
    """Dense codes (first-seen order) of a column from two independent 64-bit hashes of its values, and the
    first row of each code; None when the two hashes disagree (a collision: use exact codes)."""

def aggregate_bars(
    source: Literal["trades", "quotes"],
    codes: npt.NDArray[np.uint32],
    n_symbols: int,
    ts: npt.NDArray[np.int64],
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    *,
    every: str | int | None = None,
    ticks: int | None = None,
    volume: float | None = None,
    dollars: float | None = None,
    origin: int = 0,
) -> tuple[npt.NDArray[np.uint32], tuple[np.ndarray, ...], dict[str, int]]:
    """Batch bars over whole columns, symbols given as codes < n_symbols, GIL released (one of the engines
    behind `hybridtrader.market.aggregate_trades` / `aggregate_quotes`). ``a``/``b`` are price/size or
    bid/ask. Rows not in time order per symbol are sorted stably by (code, ts) first. Returns the bars'
    symbol codes, the other bar columns as numpy arrays (ts first), and the stats; bars ordered by
    (code, ts)."""

def aggregate_bars_hashed(
    source: Literal["trades", "quotes"],
    h1: npt.NDArray[np.uint64],
    h2: npt.NDArray[np.uint64],
    ts: npt.NDArray[np.int64],
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    *,
    every: str | int | None = None,
    ticks: int | None = None,
    volume: float | None = None,
    dollars: float | None = None,
    origin: int = 0,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64], tuple[np.ndarray, ...], dict[str, int]] | None:
    """`aggregate_bars` with symbols given by two independent hashes per row, interned in the same pass
    (codes in first-seen order). Returns (codes, first row of each code, columns, stats), or None when the
    hashes collide."""

def aggregate_bars_runs(
    source: Literal["trades", "quotes"],
    run_lengths: npt.NDArray[np.uint64],
    ts: npt.NDArray[np.int64],
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    *,
    every: str | int | None = None,
    ticks: int | None = None,
    volume: float | None = None,
    dollars: float | None = None,
    origin: int = 0,
) -> tuple[npt.NDArray[np.uint32], tuple[np.ndarray, ...], dict[str, int]]:
    """`aggregate_bars` for rows grouped by symbol: symbol code k is the k-th run of ``run_lengths[k]``
    rows, each symbol in a single run. No per-row symbol data is read; large input uses two threads."""

def bar_order(symbols: npt.NDArray[np.uint32], key: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint64]:
    """The stable permutation that orders rows by ``key[symbols]`` (a counting sort; ``key`` maps each
    code into ``0..len(key)``)."""
