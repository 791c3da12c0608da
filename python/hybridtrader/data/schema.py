"""The bar, trade and quote schemas and the small conversions every part of the data layer shares."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

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


def to_utc(name: str, value: datetime | date | str) -> datetime:
    """An aware UTC datetime from a datetime (naive = UTC), a date (midnight UTC) or ISO text."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if len(value) > 10 else date.fromisoformat(value)
        except ValueError:
            raise DataError(f"{name}: not an ISO date or time: {value!r}") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise DataError(f"{name}: expected a datetime, date or ISO string, got {type(value).__name__}")


def to_utc_end(name: str, value: datetime | date | str) -> datetime:
    """Like `to_utc`, for the inclusive end of a range: a day (a date, or ISO text without a time) means
    through the end of that day (its last microsecond, the finest time a request carries)."""
    whole_day = (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and len(value.strip()) <= 10
    )
    end = to_utc(name, value)
    return end + timedelta(days=1, microseconds=-1) if whole_day else end


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def normalize_symbols(symbols: str | Iterable[str]) -> list[str]:
    """Sorted unique upper-case tickers from a list or a comma-separated string."""
    items = symbols.split(",") if isinstance(symbols, str) else list(symbols)
    bad = [s for s in items if not isinstance(s, str) or not s.strip()]
    if not items or bad:
        raise DataError(f"symbols: expected non-empty ticker strings, got {symbols!r}")
    return sorted({s.strip().upper() for s in items})


def utc_ns(dt: datetime) -> int:
    """Epoch nanoseconds of an aware datetime, exact (no float rounding)."""
    dt = dt.astimezone(UTC)
    return int(dt.replace(microsecond=0).timestamp()) * 1_000_000_000 + dt.microsecond * 1000
