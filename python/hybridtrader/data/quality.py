"""Basic data-quality checks on bars; `check_data_quality(bars) -> DataQualityReport`.

Checks (each reports how many rows fail and a few examples): missing columns, nulls, non-positive prices,
OHLC consistency (low <= open, close <= high), negative volume, duplicate (symbol, ts), timestamps not
increasing per symbol, extreme bar-to-bar moves (|log return| above `max_abs_log_return`) and staleness
(the newest bar older than `max_staleness` before `now`, when `now` is given).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import polars as pl

BAR_COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class QualityIssue:
    check: str
    severity: str  # "error" (unusable rows) or "warning"
    count: int
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class DataQualityReport:
    n_rows: int
    issues: list[QualityIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues


def _examples(frame: pl.DataFrame) -> str:
    return ", ".join(f"{r['symbol']}@{r['ts']}" for r in frame.head(3).iter_rows(named=True))


def check_data_quality(
    bars: pl.DataFrame,
    now: datetime | None = None,
    max_staleness: timedelta = timedelta(minutes=5),
    max_abs_log_return: float = 0.2,
) -> DataQualityReport:
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        return DataQualityReport(
            bars.height, [QualityIssue("columns", "error", len(missing), f"missing {missing}")]
        )
    issues: list[QualityIssue] = []

    def add(check: str, severity: str, bad: pl.Expr, what: str) -> None:
        rows = bars.filter(bad.fill_null(False))
        if rows.height:
            issues.append(QualityIssue(check, severity, rows.height, f"{what}: {_examples(rows)}"))

    prices = ["open", "high", "low", "close"]
    add("nulls", "error", pl.any_horizontal(pl.col(c).is_null() for c in BAR_COLUMNS), "rows with nulls")
    add("non_positive_price", "error", pl.any_horizontal(pl.col(c) <= 0 for c in prices), "price <= 0")
    add(
        "ohlc_inconsistent",
        "error",
        (pl.col("low") > pl.min_horizontal("open", "close"))
        | (pl.col("high") < pl.max_horizontal("open", "close")),
        "low above open/close or high below them",
    )
    add("negative_volume", "error", pl.col("volume") < 0, "volume < 0")
    add("duplicate", "error", pl.struct("symbol", "ts").is_duplicated(), "duplicate (symbol, ts)")
    in_order = bars.with_columns(_d=pl.col("ts").diff().over("symbol"))
    rows = in_order.filter(pl.col("_d") <= pl.duration(nanoseconds=0))
    if rows.height:
        issues.append(
            QualityIssue("unordered", "error", rows.height, f"ts not increasing: {_examples(rows)}")
        )
    jumps = bars.sort("symbol", "ts").filter(
        ((pl.col("close") / pl.col("close").shift(1)).log().abs() > max_abs_log_return)
        .over("symbol")
        .fill_null(False)
    )
    if jumps.height:
        issues.append(
            QualityIssue(
                "price_jump",
                "warning",
                jumps.height,
                f"|log return| > {max_abs_log_return}: {_examples(jumps)}",
            )
        )
    if now is not None and bars.height:
        newest = bars["ts"].max()
        if newest is not None and now - newest > max_staleness:  # type: ignore[operator]
            issues.append(
                QualityIssue("stale", "warning", 1, f"newest bar {newest} is older than {max_staleness}")
            )
    return DataQualityReport(bars.height, issues)
