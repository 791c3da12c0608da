"""Time units and the one set of datetime <-> UTC epoch-nanosecond conversions.

DESIGN.md's data convention: timestamps are UTC int64 nanoseconds in Rust and numpy and `Datetime("ns",
"UTC")` in Polars frames. Conversions here are exact: integer microseconds x 1000, never a float
`timestamp()` (a float of ~1.7e9 seconds cannot hold nanoseconds). Python datetimes carry microseconds,
so `from_utc_ns` truncates the last three digits (toward the past).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from hybridtrader.errors import ConfigError, DataError

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_NS_PER_UNIT = {"ns": 1, "us": NS_PER_US, "ms": NS_PER_MS}  # a Polars Datetime's time unit, in ns


def utc_ns(ts: datetime | int, name: str = "ts") -> int:
    """Epoch nanoseconds of an aware datetime (exact), or of an int already in epoch ns (numpy ints too).

    A naive datetime or any other type is a ConfigError naming `name`: a time without a zone is ambiguous."""
    if isinstance(ts, datetime):
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise ConfigError(f"{name} must be timezone-aware (UTC), got naive datetime {ts}")
        return (ts - EPOCH) // _US * NS_PER_US
    if isinstance(ts, int | np.integer) and not isinstance(ts, bool):
        return int(ts)
    raise ConfigError(f"{name} must be an aware datetime or epoch ns (int), got {ts!r}")


def from_utc_ns(ns: int) -> datetime:
    """Aware UTC datetime of epoch ns (microsecond precision, truncated; no float rounding)."""
    return EPOCH + timedelta(microseconds=int(ns) // NS_PER_US)


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


def rfc3339(ts: datetime | int) -> str:
    """UTC RFC 3339 text with a `Z` of an aware datetime or epoch ns, to the microsecond (Alpaca's precision;
    the fraction only when there is one)."""
    dt = from_utc_ns(ts) if isinstance(ts, int | np.integer) else ts
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def epoch_ns(ts: pl.Series) -> np.ndarray:
    """The UTC epoch ns of a Polars Datetime series as numpy, what `ts.dt.epoch("ns").to_numpy()` gives: its
    integers cast out and scaled from its time unit. A cast costs microseconds where `dt.epoch` and
    `to_physical` cost ~50 us (they run Polars' query engine), and a live bar time reads its times
    several times."""
    values = ts.cast(pl.Int64).to_numpy()
    scale = _NS_PER_UNIT[ts.dtype.time_unit]  # type: ignore[attr-defined]
    return values if scale == 1 else values * scale


def time_runs(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends): the first row and one past the last row of each run of equal times in the sorted
    array `ts` (a frame's bar times: one run per bar time); both empty for an empty array."""
    starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]]) if len(ts) else np.zeros(0, np.intp)
    return starts, np.r_[starts[1:], len(ts)].astype(np.intp)
