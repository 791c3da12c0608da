"""The bar, trade and quote schemas and the symbol helpers every layer shares (DESIGN.md conventions)."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from hybridtrader.errors import DataError

TS = pl.Datetime("ns", "UTC")
BAR_SCHEMA = {
    "symbol": pl.String, "ts": TS, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64,
    "close": pl.Float64, "volume": pl.Float64, "vwap": pl.Float64, "trades": pl.Int64,
}


TRADE_SCHEMA = {"symbol": pl.String, "ts": TS, "price": pl.Float64, "size": pl.Float64}
QUOTE_SCHEMA = {
    "symbol": pl.String, "ts": TS, "bid": pl.Float64, "ask": pl.Float64, "bid_size": pl.Float64,
    "ask_size": pl.Float64,
}


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BAR_SCHEMA)


def normalize_symbols(symbols: str | Iterable[str]) -> list[str]:
    """Sorted unique upper-case tickers from a list or a comma-separated string."""
    items = symbols.split(",") if isinstance(symbols, str) else list(symbols)
    bad = [s for s in items if not isinstance(s, str) or not s.strip()]
    if not items or bad:
        raise DataError(f"symbols: expected non-empty ticker strings, got {symbols!r}")
    return sorted({s.strip().upper() for s in items})


def symbol_codes(symbols: pl.Series) -> pl.Series:
    """`symbols` as an Enum of its sorted distinct names: `.to_physical()` is each row's position in that
    sorted list. Grouping, sorting and ranking by these small integers is several times cheaper than by
    the strings (the engine does it once per session)."""
    return symbols.cast(pl.Enum(symbols.unique().sort().drop_nulls()))
