"""The bar, trade and quote schemas and the symbol helpers every layer shares (DESIGN.md conventions)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.errors import ConfigError, DataError

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
SIDES = ("buy", "sell")
_SIGNS = {"buy": 1, "sell": -1}


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


def encode_symbols(
    symbols: str | Sequence[str] | pl.Series | np.ndarray, n: int = 1, name: str = "symbols"
) -> tuple[list[str], np.ndarray]:
    """Dictionary-encode a string column for the Rust cores: (distinct names, uint32 index per row).

    One string stands for `n` rows of it. An Enum Series keeps its categories (no string hashing); any
    other column gets its sorted distinct names (`symbol_codes`). Nulls are a ConfigError naming `name`."""
    if isinstance(symbols, str):
        return [symbols], np.zeros(n, dtype=np.uint32)
    enum = isinstance(symbols, pl.Series) and isinstance(symbols.dtype, pl.Enum)
    s = symbols if enum else pl.Series(name, symbols, dtype=pl.String)
    if s.null_count():
        raise ConfigError(f"{name} has {s.null_count()} null values")
    if not enum:
        s = symbol_codes(s)
    codes = s.to_physical().cast(pl.UInt32).to_numpy()
    return s.dtype.categories.to_list(), np.ascontiguousarray(codes)  # type: ignore[attr-defined]


def side_sign(side: str) -> int:
    """+1 for "buy", -1 for "sell" (DESIGN.md: sides are "buy"/"sell"); anything else is a ConfigError."""
    sign = _SIGNS.get(side)
    if sign is None:
        raise ConfigError(f"side must be 'buy' or 'sell', got {side!r}")
    return sign


Encoder = Callable[[Any], tuple[list[str], np.ndarray]]


def side_signs(sides: Any, name: str = "sides", encode: Encoder | None = None) -> np.ndarray:
    """Order sides as int8 +1 (buy) / -1 (sell) per row, from "buy"/"sell" strings (one string, a list, a
    Series, an array) or from integers +1/-1. Strings are dictionary-encoded first (by `encode`, default
    `encode_symbols`; a Rust core passes its own), so the mapping runs once per distinct value. A bad
    value is one ConfigError naming the first bad row or value."""
    if isinstance(sides, pl.Series) and sides.dtype.is_integer():
        sides = sides.to_numpy()
    if isinstance(sides, np.ndarray) and sides.dtype.kind in "iu":
        bad = np.flatnonzero((sides != 1) & (sides != -1))
        if bad.size:
            raise ConfigError(f"{name}[{bad[0]}] must be +1 (buy) or -1 (sell), got {sides[bad[0]]}")
        return np.ascontiguousarray(sides, dtype=np.int8)
    names, codes = encode(sides) if encode is not None else encode_symbols(sides, name=name)
    unknown = [s for s in names if s not in _SIGNS]
    if unknown:
        raise ConfigError(f"{name} must be 'buy' or 'sell', got {unknown[0]!r}")
    return np.array([_SIGNS[s] for s in names], dtype=np.int8)[codes]
