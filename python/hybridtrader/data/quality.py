"""Basic data-quality checks on bars: `check_data_quality(bars) -> QualityReport`.

Checks: staleness (newest bar of a symbol older than `stale_after_s` at `now`, when `now` is given),
duplicate (symbol, ts) rows, NaN/null values, non-positive prices or negative volume, OHLC inconsistencies
(high below open/close/low, low above open/close) and jumps (|log return| above `max_abs_log_return`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

PRICES = ("open", "high", "low", "close")


@dataclass
class QualityReport:
    rows: int
    symbols: int
    stale: dict[str, float] = field(default_factory=dict)  # symbol -> seconds since its last bar
    duplicates: int = 0  # extra copies of a (symbol, ts)
    nulls: dict[str, int] = field(default_factory=dict)  # column -> NaN/null count
    non_positive: int = 0  # rows with a price <= 0 or a negative volume
    ohlc_inconsistent: int = 0
    jumps: int = 0

    @property
    def issues(self) -> list[str]:
        out = []
        if self.stale:
            out.append(f"stale: {', '.join(f'{s} ({a:.0f} s)' for s, a in sorted(self.stale.items()))}")
        if self.duplicates:
            out.append(f"duplicate bars: {self.duplicates}")
        if self.nulls:
            out.append("NaN/null values: " + ", ".join(f"{c} {n}" for c, n in self.nulls.items()))
        if self.non_positive:
            out.append(f"non-positive prices or negative volume: {self.non_positive} rows")
        if self.ohlc_inconsistent:
            out.append(f"OHLC inconsistent: {self.ohlc_inconsistent} rows")
        if self.jumps:
            out.append(f"outlier jumps: {self.jumps}")
        return out

    @property
    def ok(self) -> bool:
        return not self.issues

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "symbols": self.symbols,
            "ok": self.ok,
            "issues": self.issues,
            "stale": self.stale,
            "duplicates": self.duplicates,
            "nulls": self.nulls,
            "non_positive": self.non_positive,
            "ohlc_inconsistent": self.ohlc_inconsistent,
            "jumps": self.jumps,
        }


def check_data_quality(
    bars: pl.DataFrame,
    *,
    now: datetime | None = None,
    stale_after_s: float = 300.0,
    max_abs_log_return: float = 0.2,
) -> QualityReport:
    """Quality report of bars (any order). `now` enables the staleness check."""
    missing = [c for c in ("symbol", "ts", *PRICES, "volume") if c not in bars.columns]
    if missing:
        raise ValueError(f"bars: missing columns {missing}")
    if stale_after_s <= 0 or max_abs_log_return <= 0:
        raise ValueError(
            f"stale_after_s and max_abs_log_return must be > 0, got {stale_after_s}, {max_abs_log_return}"
        )
    df = bars.sort("symbol", "ts")
    rep = QualityReport(rows=df.height, symbols=df["symbol"].n_unique())
    if df.is_empty():
        return rep
    rep.duplicates = df.height - int(df.select(pl.struct("symbol", "ts").n_unique()).item())
    numeric = [c for c in (*PRICES, "volume") if c in df.columns]
    counts = df.select(
        *[(pl.col(c).is_null() | pl.col(c).cast(pl.Float64).is_nan()).sum().alias(c) for c in numeric],
        pl.col("ts").is_null().sum().alias("ts"),
    ).row(0, named=True)
    rep.nulls = {c: int(n) for c, n in counts.items() if n}
    o, h, lo, c = (pl.col(x) for x in PRICES)
    rep.non_positive = int(
        df.select(
            (pl.any_horizontal(*[pl.col(x) <= 0 for x in PRICES]) | (pl.col("volume") < 0)).sum()
        ).item()
    )
    rep.ohlc_inconsistent = int(
        df.select(((h < pl.max_horizontal(o, c, lo)) | (lo > pl.min_horizontal(o, c, h))).sum()).item()
    )
    if now is not None:
        for sym, last in df.group_by("symbol").agg(pl.col("ts").max()).iter_rows():
            seconds = (now - last).total_seconds()
            if seconds > stale_after_s:
                rep.stale[sym] = seconds
    jump = (c / c.shift(1)).log().abs().over("symbol") > max_abs_log_return
    rep.jumps = int(df.filter(c > 0).select(jump.fill_null(False).sum()).item())
    return rep
