"""Parquet bar store partitioned by timeframe, symbol and period.

Layout: `root/timeframe=1Min/symbol=AAPL/2024-01.parquet` (intraday: one file per month; daily and
coarser: one per year). `upsert` merges new bars into the files they belong to (a bar already stored is
replaced, never duplicated) and rewrites each touched file atomically, so re-fetching is harmless and an
interrupted write leaves the old file. Reads are lazy (`scan`, Polars predicate pushdown); `gaps` compares
what is stored with the NYSE session calendar.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from hybridtrader.data.atomic import write_parquet_atomic
from hybridtrader.errors import DataError, first_line
from hybridtrader.market import calendar
from hybridtrader.market.schema import BAR_SCHEMA, empty_bars, normalize_symbols
from hybridtrader.market.timeconv import epoch_ns, to_utc, utc_ns
from hybridtrader.market.timeframe import Timeframe

GAP_SCHEMA = {"symbol": pl.String, "gap_start": BAR_SCHEMA["ts"], "gap_end": BAR_SCHEMA["ts"],
              "missing": pl.Int64}


def _check_bars(bars: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in BAR_SCHEMA if c not in bars.columns]
    if missing:
        raise DataError(f"bars: missing columns {missing} (bar schema: {list(BAR_SCHEMA)})")
    try:
        return bars.select(list(BAR_SCHEMA)).cast(BAR_SCHEMA)  # type: ignore[arg-type]
    except pl.exceptions.PolarsError as e:
        raise DataError(f"bars: columns do not fit the bar schema: {e}") from None


def _read_file(path: Path) -> pl.DataFrame:
    """One stored file; a torn or foreign file is a DataError naming it (and it is left alone)."""
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise DataError(f"bar store file {path} is unreadable ({first_line(e)}); move it away to "
                        "refetch its bars") from None


class BarStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, timeframe: Timeframe, symbol: str) -> Path:
        return self.root / f"timeframe={timeframe.value}" / f"symbol={symbol}"

    @staticmethod
    def _period(timeframe: Timeframe) -> str:
        return "%Y-%m" if timeframe.intraday else "%Y"

    def files(self, timeframe: str | Timeframe, symbols: list[str] | None = None) -> list[Path]:
        tf = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
        base = self.root / f"timeframe={tf.value}"
        if symbols is None:
            return sorted(base.glob("symbol=*/*.parquet"))
        return sorted(f for s in symbols for f in self._dir(tf, s).glob("*.parquet"))

    def symbols(self, timeframe: str | Timeframe) -> list[str]:
        return sorted({f.parent.name.removeprefix("symbol=") for f in self.files(timeframe)})

    def upsert(self, bars: pl.DataFrame, timeframe: str | Timeframe) -> int:
        """Merge bars into the store; returns how many were new (not already stored at that time)."""
        tf = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
        bars = _check_bars(bars)
        if bars.is_empty():
            return 0
        if bars["ts"].null_count() or bars["symbol"].null_count():
            raise DataError("bars: symbol and ts must not be null")
        keyed = bars.with_columns(
            pl.col("ts").dt.convert_time_zone("America/New_York").dt.strftime(self._period(tf)).alias("_p"))
        added = 0
        for (symbol, period), part in keyed.group_by("symbol", "_p", maintain_order=True):
            path = self._dir(tf, str(symbol)) / f"{period}.parquet"
            new = part.drop("_p").unique("ts", keep="last")
            if path.exists():
                old = _read_file(path)
                added += new.join(old.select("ts"), on="ts", how="anti").height
                merged = pl.concat([old.join(new.select("ts"), on="ts", how="anti"), new])
            else:
                added += new.height
                merged = new
            write_parquet_atomic(merged.sort("ts"), path)
        return added

    def scan(self, symbols: str | list[str] | None, timeframe: str | Timeframe,
             start: datetime | date | str | None = None, end: datetime | date | str | None = None
             ) -> pl.LazyFrame:
        """Lazy bars of `symbols` (None: all) in [start, end], sorted by symbol then time."""
        tf = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
        syms = normalize_symbols(symbols) if symbols is not None else None
        files = self.files(tf, syms)
        if not files:
            return empty_bars().lazy()
        lf = pl.scan_parquet(files, schema=BAR_SCHEMA, hive_partitioning=False)  # type: ignore[arg-type]
        if start is not None:
            lf = lf.filter(pl.col("ts") >= to_utc("start", start))
        if end is not None:
            lf = lf.filter(pl.col("ts") <= to_utc("end", end))
        return lf.sort("symbol", "ts")

    def read(self, symbols: str | list[str] | None, timeframe: str | Timeframe,
             start: datetime | date | str | None = None, end: datetime | date | str | None = None
             ) -> pl.DataFrame:
        try:
            return self.scan(symbols, timeframe, start, end).collect()
        except pl.exceptions.PolarsError as e:
            raise DataError(f"bar store {self.root}: a file is unreadable ({first_line(e)}); "
                            "`hybridtrader health --store` names it") from None

    def gaps(self, symbols: str | list[str], timeframe: str | Timeframe, start: datetime | date | str,
             end: datetime | date | str) -> pl.DataFrame:
        """Runs of expected bars missing from the store: (symbol, gap_start, gap_end, missing).

        Expected bars are the bar starts covering regular-session minutes (intraday, Alpaca labels bars
        on clock boundaries) or one bar per session at midnight New York (daily)."""
        tf = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
        lo, hi = to_utc("start", start), to_utc("end", end)
        expected = expected_bar_starts(tf, lo, hi)
        stored = self.scan(symbols, tf, lo, hi).select("symbol", "ts").collect()
        rows = []
        for sym in normalize_symbols(symbols):
            have = epoch_ns(stored.filter(pl.col("symbol") == sym)["ts"])
            missing = expected[~np.isin(expected, have)]
            rows.extend((sym, a, b, n) for a, b, n in _runs(missing, expected))
        if not rows:
            return pl.DataFrame(schema=GAP_SCHEMA)
        return pl.DataFrame(rows, schema=list(GAP_SCHEMA), orient="row").with_columns(
            pl.col("gap_start").cast(GAP_SCHEMA["gap_start"]), pl.col("gap_end").cast(GAP_SCHEMA["gap_end"]))

    def verify(self) -> list[str]:
        """Integrity problems of every stored file (unreadable, wrong schema, duplicate or unsorted
        times, a bar in the wrong file); empty when the store is sound."""
        problems = []
        for path in sorted(self.root.glob("timeframe=*/symbol=*/*.parquet")):
            try:
                df = pl.read_parquet(path)
            except Exception as e:  # any unreadable file is a finding, not a crash
                problems.append(f"{path}: unreadable ({e})")
                continue
            if dict(df.schema) != BAR_SCHEMA:
                problems.append(f"{path}: schema {dict(df.schema)} is not the bar schema")
                continue
            sym = path.parent.name.removeprefix("symbol=")
            if df.height and (df["symbol"] != sym).any():
                problems.append(f"{path}: holds bars of other symbols")
            if df["ts"].is_duplicated().any():
                problems.append(f"{path}: duplicate bar times")
            if not df["ts"].is_sorted():
                problems.append(f"{path}: bars not sorted by time")
        return problems


def expected_bar_starts(tf: Timeframe, lo: datetime, hi: datetime) -> np.ndarray:
    """UTC ns starts of the bars a complete feed has in [lo, hi] for timeframe tf."""
    ny = calendar.NEW_YORK
    days = calendar.sessions(lo.astimezone(ny).date(), hi.astimezone(ny).date())
    if tf.unit == "Day":
        starts = np.array([utc_ns(datetime(d.year, d.month, d.day, tzinfo=ny)) for d in days], dtype=np.int64)
    elif tf.intraday:
        minutes = calendar.session_minutes_ns(days[0], days[-1]) if days else np.empty(0, np.int64)
        starts = np.unique(minutes // tf.nominal_ns * tf.nominal_ns)
    else:
        raise DataError(f"timeframe: gap reports cover intraday and 1Day bars, not {tf.value}")
    return starts[(starts >= utc_ns(lo)) & (starts <= utc_ns(hi))]


def _runs(missing: np.ndarray, expected: np.ndarray) -> list[tuple[int, int, int]]:
    """Group missing bar starts into runs of consecutive expected bars."""
    if missing.size == 0:
        return []
    pos = np.searchsorted(expected, missing)
    breaks = np.flatnonzero(np.diff(pos) != 1) + 1
    return [(int(r[0]), int(r[-1]), int(r.size)) for r in np.split(missing, breaks)]
