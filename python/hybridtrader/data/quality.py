"""Data-quality checks on bars (`check_data_quality`), used by the monitoring layer and the fetch command.

Checks: staleness (last bar older than `stale_after_s` at `now`), missing minutes against the NYSE
session calendar (intraday bars), duplicate (symbol, ts) rows, NaN/null values, non-positive prices or
negative volume, OHLC inconsistencies (high below open/close/low, low above open/close) and outlier
jumps: log returns (within a session for intraday bars) whose robust z-score, 0.6745 (r - median) / MAD,
exceeds `jump_zscore` (against each symbol's own return distribution) or whose size exceeds
`max_abs_log_return` (catches gross errors in series too short for a robust scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.data.bar_store import expected_bar_starts
from hybridtrader.errors import DataError
from hybridtrader.market.schema import BAR_SCHEMA
from hybridtrader.market.timeconv import NS_PER_SECOND, epoch_ns, utc_ns
from hybridtrader.market.timeframe import Timeframe

PRICES = ("open", "high", "low", "close")
MAD_TO_SIGMA = 0.6745  # Phi^-1(0.75): MAD of a normal is 0.6745 sigma


@dataclass
class QualityReport:
    rows: int
    symbols: int
    stale: dict[str, float] = field(default_factory=dict)  # symbol -> seconds since its last bar
    missing_bars: dict[str, int] = field(default_factory=dict)  # symbol -> expected bars absent
    duplicates: int = 0
    nulls: dict[str, int] = field(default_factory=dict)  # column -> NaN/null count
    non_positive: int = 0  # rows with a price <= 0 or a negative volume
    ohlc_inconsistent: int = 0
    jumps: int = 0
    jump_rows: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={"symbol": pl.String, "ts": BAR_SCHEMA["ts"], "log_return": pl.Float64, "zscore": pl.Float64}))

    @property
    def issues(self) -> list[str]:
        out = []
        if self.stale:
            out.append(f"stale: {', '.join(f'{s} ({a:.0f} s)' for s, a in sorted(self.stale.items()))}")
        if any(self.missing_bars.values()):
            out.append("missing bars: " + ", ".join(f"{s} {n}" for s, n in sorted(self.missing_bars.items())
                                                    if n))
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
            "rows": self.rows, "symbols": self.symbols, "ok": self.ok, "issues": self.issues,
            "stale": self.stale, "missing_bars": self.missing_bars, "duplicates": self.duplicates,
            "nulls": self.nulls, "non_positive": self.non_positive,
            "ohlc_inconsistent": self.ohlc_inconsistent, "jumps": self.jumps,
        }


def robust_zscores(x: np.ndarray) -> np.ndarray:
    """0.6745 (x - median) / MAD; with MAD 0 (mostly flat series) the mean absolute deviation stands in
    (scaled to a normal's sigma); all zeros when the series has no spread at all."""
    if x.size == 0:
        return x.astype(float)
    med = float(np.median(x))
    dev = np.abs(x - med)
    mad = float(np.median(dev))
    if mad > 0:
        return MAD_TO_SIGMA * (x - med) / mad
    mean_ad = float(dev.mean())
    if mean_ad > 0:
        return (x - med) / (1.2533 * mean_ad)  # sqrt(pi/2): mean abs deviation -> sigma for a normal
    return np.zeros_like(x, dtype=float)


def check_data_quality(
    bars: pl.DataFrame,
    *,
    timeframe: str = "1Min",
    now: datetime | None = None,
    stale_after_s: float = 300.0,
    jump_zscore: float = 8.0,
    max_abs_log_return: float = 0.2,
) -> QualityReport:
    """Quality report of bars in the bar schema (any order). `now` enables the staleness check."""
    missing_cols = [c for c in ("symbol", "ts", *PRICES, "volume") if c not in bars.columns]
    if missing_cols:
        raise DataError(f"bars: missing columns {missing_cols}")
    for name, value in (("stale_after_s", stale_after_s), ("jump_zscore", jump_zscore),
                        ("max_abs_log_return", max_abs_log_return)):
        if not value > 0:
            raise DataError(f"{name}: must be > 0, got {value}")
    tf = Timeframe.parse(timeframe)
    df = bars.sort("symbol", "ts")
    rep = QualityReport(rows=df.height, symbols=df["symbol"].n_unique())
    if df.is_empty():
        return rep

    rep.duplicates = df.height - int(df.select(pl.struct("symbol", "ts").n_unique()).item())  # extra copies
    numeric = [c for c in (*PRICES, "volume", "vwap") if c in df.columns]
    counts = df.select(
        *[(pl.col(c).is_null() | pl.col(c).is_nan()).sum().alias(c) for c in numeric],
        pl.col("ts").is_null().sum().alias("ts"),
    ).row(0, named=True)
    rep.nulls = {c: int(n) for c, n in counts.items() if n}

    o, h, lo, c = (pl.col(x) for x in PRICES)
    rep.non_positive = int(df.select(
        (pl.any_horizontal(*[pl.col(x) <= 0 for x in PRICES]) | (pl.col("volume") < 0)).sum()).item())
    rep.ohlc_inconsistent = int(df.select(
        ((h < pl.max_horizontal(o, c, lo)) | (lo > pl.min_horizontal(o, c, h))).sum()).item())

    if now is not None:
        age = df.group_by("symbol").agg(pl.col("ts").max())
        now_ns = utc_ns(now)
        for sym, last in age.iter_rows():
            seconds = (now_ns - utc_ns(last)) / NS_PER_SECOND if last is not None else float("inf")
            if seconds > stale_after_s:
                rep.stale[sym] = seconds

    if tf.intraday or tf.unit == "Day":
        for (sym,), part in df.group_by("symbol", maintain_order=True):
            ts = part["ts"].drop_nulls()
            if ts.is_empty():
                continue
            expected = expected_bar_starts(tf, ts.min(), ts.max())  # type: ignore[arg-type]
            have = epoch_ns(ts)
            rep.missing_bars[str(sym)] = int((~np.isin(expected, have)).sum())

    # intraday returns stay within a session: the overnight gap is not a bar-to-bar jump
    over = ["symbol", pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()] if tf.intraday \
        else ["symbol"]
    valid = df.filter(pl.col("close") > 0).with_columns(
        pl.col("close").log().diff().over(over).alias("log_return")).drop_nulls("log_return")
    jumps = []
    for (sym,), part in valid.group_by("symbol", maintain_order=True):
        r = part["log_return"].to_numpy()
        z = robust_zscores(r)
        hit = (np.abs(z) > jump_zscore) | (np.abs(r) > max_abs_log_return)
        if hit.any():
            jumps.append(pl.DataFrame({"symbol": str(sym), "ts": part["ts"].filter(pl.Series(hit)),
                                       "log_return": r[hit], "zscore": z[hit]}))
    if jumps:
        rep.jump_rows = pl.concat(jumps)
        rep.jumps = rep.jump_rows.height
    return rep
