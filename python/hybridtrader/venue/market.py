"""The market a venue replays: trades, quotes, bars per timeframe, symbol reference data and earnings.

Built from a synthetic market or from recorded parquet. Frames are kept sorted by (symbol, ts) for the
REST endpoints (binary search per symbol) and by ts for the streams; bars of coarser timeframes are
aggregated from the 1-minute bars on first use and cached.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.errors import DataError, first_line
from hybridtrader.market.bars import aggregate_trades, rollup
from hybridtrader.market.schema import BAR_SCHEMA, QUOTE_SCHEMA, TRADE_SCHEMA, TS
from hybridtrader.market.synth import daily_bars_from_minutes
from hybridtrader.market.timeconv import NS_PER_MINUTE, epoch_ns
from hybridtrader.market.timeframe import Timeframe

TRADE_COLS = tuple(TRADE_SCHEMA)
QUOTE_COLS = tuple(QUOTE_SCHEMA)
BAR_COLS = tuple(BAR_SCHEMA)
SYMBOL_COLS = ("symbol", "sector", "shortable", "easy_to_borrow", "adv", "daily_vol")
EARNINGS_COLS = ("symbol", "date", "hour", "eps_estimate", "eps_actual")
_ASSET_NS = uuid.UUID("6f1c3b1e-8f3a-4c61-9a55-0d5f3f1b2a10")


@dataclass
class Series:
    """One event table sorted by (symbol, ts) with per-symbol row ranges."""

    frame: pl.DataFrame
    ts: np.ndarray  # int64 ns, aligned with frame rows
    ranges: dict[str, tuple[int, int]]

    @classmethod
    def build(cls, frame: pl.DataFrame) -> Series:
        frame = frame.sort("symbol", "ts")
        ranges: dict[str, tuple[int, int]] = {}
        if frame.height:
            syms = frame["symbol"]
            starts = syms.is_first_distinct().arg_true().to_list()
            names = syms.gather(starts).to_list()
            bounds = [*starts, frame.height]
            ranges = {n: (bounds[i], bounds[i + 1]) for i, n in enumerate(names)}
        return cls(frame, epoch_ns(frame["ts"]), ranges)


def _require(frame: pl.DataFrame, cols: tuple[str, ...], what: str) -> pl.DataFrame:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise DataError(f"{what}: missing columns {missing} (expected {list(cols)})")
    return frame.select(cols).with_columns(pl.col("ts").cast(TS)) if "ts" in cols else frame.select(cols)


def aggregate_bars(bars: pl.DataFrame, every: str, offset: str | None = None) -> pl.DataFrame:
    """Coarser bars from finer ones: first open, max high, min low, last close, summed volume/trades."""
    return (
        bars.sort("symbol", "ts")
        .group_by_dynamic("ts", every=every, group_by="symbol", closed="left", label="left",
                          offset=offset)
        .agg(rollup())
        .select(BAR_COLS)
    )


class ReplayMarket:
    """Everything the venue serves, indexed for fast range queries."""

    def __init__(
        self,
        *,
        trades: pl.DataFrame | None = None,
        quotes: pl.DataFrame | None = None,
        bars_1m: pl.DataFrame | None = None,
        bars_1d: pl.DataFrame | None = None,
        symbols: pl.DataFrame | None = None,
        earnings: pl.DataFrame | None = None,
        source: str = "frames given by the caller",
        synthetic: bool = False,
    ) -> None:
        self.source = source  # where the prices come from, shown wherever they are served
        self.synthetic = synthetic
        empty_trades = pl.DataFrame(schema={"symbol": pl.String, "ts": TS, "price": pl.Float64,
                                            "size": pl.Int64})
        trades = _require(trades, TRADE_COLS, "trades") if trades is not None else empty_trades
        self.trades = Series.build(trades)
        if bars_1m is None:
            if trades.height == 0:
                raise DataError("market: needs trades or 1-minute bars")
            bars_1m = aggregate_trades(self.trades.frame, every="1m")
        bars_1m = _require(bars_1m, BAR_COLS, "bars_1m")
        if bars_1d is None:
            bars_1d = daily_bars_from_minutes(bars_1m)
        bars_1d = _require(bars_1d, BAR_COLS, "bars_1d")
        self.quotes = Series.build(
            _require(quotes, QUOTE_COLS, "quotes") if quotes is not None
            else pl.DataFrame(schema={"symbol": pl.String, "ts": TS, "bid": pl.Float64, "ask": pl.Float64,
                                      "bid_size": pl.Int64, "ask_size": pl.Int64})
        )
        self._bars: dict[Timeframe, Series] = {
            Timeframe(1, "Min"): Series.build(bars_1m),
            Timeframe(1, "Day"): Series.build(bars_1d),
        }
        # `last_price` runs per position on every order (buying power): numpy reads, not Polars indexing
        q = self.quotes.frame
        self._quote_mid = (q["bid"].cast(pl.Float64).to_numpy() + q["ask"].cast(pl.Float64).to_numpy()) / 2
        self._close_1m = self._bars[Timeframe(1, "Min")].frame["close"].cast(pl.Float64).to_numpy()
        names = sorted(set(bars_1m["symbol"].unique().to_list()) | set(self.trades.ranges))
        if symbols is None:
            symbols = pl.DataFrame({"symbol": names})
        self.symbols = self._reference(symbols, names)
        self.earnings = (
            _require(earnings, EARNINGS_COLS, "earnings").with_columns(pl.col("date").cast(pl.Date))
            if earnings is not None
            else pl.DataFrame(schema={"symbol": pl.String, "date": pl.Date, "hour": pl.String,
                                      "eps_estimate": pl.Float64, "eps_actual": pl.Float64})
        )
        self.names: list[str] = self.symbols["symbol"].to_list()
        self.codes = {s: i for i, s in enumerate(self.names)}
        self._asset_ids = {s: str(uuid.uuid5(_ASSET_NS, s)) for s in self.names}
        first = int(self._bars[Timeframe(1, "Min")].ts.min()) if bars_1m.height else 0
        self.start_ns = min(first, int(self.trades.ts.min())) if self.trades.ts.size else first

    @staticmethod
    def _reference(symbols: pl.DataFrame, names: list[str]) -> pl.DataFrame:
        if "symbol" not in symbols.columns:
            raise DataError("symbols: missing column 'symbol'")
        defaults: dict[str, Any] = {"sector": "Unknown", "shortable": True, "easy_to_borrow": True,
                                    "adv": 0.0, "daily_vol": 0.0}
        for col, value in defaults.items():
            if col not in symbols.columns:
                symbols = symbols.with_columns(pl.lit(value).alias(col))
        extra = sorted(set(names) - set(symbols["symbol"].to_list()))
        if extra:
            symbols = pl.concat([symbols.select(SYMBOL_COLS),
                                 pl.DataFrame({"symbol": extra}).with_columns(
                                     *[pl.lit(v).alias(c) for c, v in defaults.items()])
                                 .select(SYMBOL_COLS)], how="vertical_relaxed")
        return symbols.select(SYMBOL_COLS).sort("symbol")

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def from_synthetic(cls, market: Any) -> ReplayMarket:
        """From a `hybridtrader.market.synth.SyntheticMarket` (or anything with its frame attributes)."""
        return cls(
            trades=getattr(market, "trades", None),
            quotes=getattr(market, "quotes", None),
            bars_1m=market.bars_1m,
            bars_1d=getattr(market, "bars_1d", None),
            symbols=getattr(market, "symbols", None),
            earnings=getattr(market, "earnings", None),
            source="SYNTHETIC prices (a seeded simulation, not real market data; seed "
            f"{getattr(market, 'params', {}).get('seed', '?')})",
            synthetic=True,
        )

    @classmethod
    def from_parquet(cls, root: str | Path) -> ReplayMarket:
        """From recorded parquet: `trades.parquet` and/or `bars_1m.parquet` (required: one of them), and
        optionally `quotes`, `bars_1d`, `symbols`, `earnings`."""
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"market path: {root} is not a directory")
        frames = {}
        for name in ("trades", "quotes", "bars_1m", "bars_1d", "symbols", "earnings"):
            f = root / f"{name}.parquet"
            if f.exists():
                try:
                    frames[name] = pl.read_parquet(f)
                except (pl.exceptions.PolarsError, OSError) as e:
                    raise DataError(
                        f"market path: {f} is not a readable parquet file ({first_line(e)})"
                    ) from None
        if "trades" not in frames and "bars_1m" not in frames:
            raise DataError(f"market path: {root} has neither trades.parquet nor bars_1m.parquet")
        return cls(**frames, source=f"recorded parquet in {root}")

    def describe(self) -> dict[str, Any]:
        """What is served: the source (synthetic or recorded), the symbols and the sessions (NY dates)."""
        days = self._bars[Timeframe(1, "Day")].frame["ts"].dt.convert_time_zone("America/New_York")
        dates = sorted(days.dt.date().unique().to_list())
        return {
            "source": self.source.strip(),
            "synthetic": self.synthetic,
            "symbols": self.names,
            "sessions": len(dates),
            "first_session": str(dates[0]) if dates else None,
            "last_session": str(dates[-1]) if dates else None,
        }

    # --------------------------------------------------------------------------------- queries
    def bars(self, tf: Timeframe) -> Series:
        """Bars of a timeframe (aggregated from 1-minute or daily bars on first use)."""
        if tf not in self._bars:
            if tf.intraday:
                src, every = self._bars[Timeframe(1, "Min")].frame, tf.polars_every
                self._bars[tf] = Series.build(aggregate_bars(src, every))
            else:
                daily = self._bars[Timeframe(1, "Day")].frame
                ny = daily.with_columns(pl.col("ts").dt.convert_time_zone("America/New_York"))
                agg = aggregate_bars(ny, tf.polars_every)
                self._bars[tf] = Series.build(agg.with_columns(pl.col("ts").dt.convert_time_zone("UTC")))
        return self._bars[tf]

    def asset_id(self, symbol: str) -> str:
        """The asset's id: a UUID 5 of its symbol (kept for the listed symbols: every order JSON has one)."""
        known = self._asset_ids.get(symbol)
        return known if known is not None else str(uuid.uuid5(_ASSET_NS, symbol))

    def quote_at(self, symbol: str, ts_ns: int) -> int | None:
        """Row index of the latest quote of `symbol` at or before ts_ns, or None."""
        rng = self.quotes.ranges.get(symbol)
        if rng is None:
            return None
        lo, hi = rng
        i = int(np.searchsorted(self.quotes.ts[lo:hi], ts_ns, side="right")) - 1
        return lo + i if i >= 0 else None

    def last_price(self, symbol: str, ts_ns: int) -> float | None:
        """Mid of the latest quote at or before ts_ns, else the latest 1-minute close, else None."""
        i = self.quote_at(symbol, ts_ns)
        if i is not None:
            return float(self._quote_mid[i])
        bars = self._bars[Timeframe(1, "Min")]
        rng = bars.ranges.get(symbol)
        if rng is None:
            return None
        lo, hi = rng
        # a minute bar is known once its interval has ended
        j = int(np.searchsorted(bars.ts[lo:hi], ts_ns - NS_PER_MINUTE, side="right")) - 1
        if j < 0:
            return None
        return float(self._close_1m[lo + j])
