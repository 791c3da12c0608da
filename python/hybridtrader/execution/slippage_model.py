"""Slippage model: expected cost in bps = half the time-of-day spread + power-law market impact, capped.

The hot paths (per-call forecasts, batch forecasts, learning loops) are methods of the Rust base class
`hybridtrader._core.SlippageModelCore`; this subclass adds construction from the config and the Polars
front ends. Time of day comes from the UTC timestamps (New York DST rules in Rust), so `ts` is always epoch
nanoseconds, an aware datetime or a UTC Datetime column; `ts=None` means now.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hybridtrader._core import SlippageModelCore
from hybridtrader.config import ConfigLike, SlippageConfig, config_section
from hybridtrader.errors import ConfigError, StateError
from hybridtrader.market.calendar import NEW_YORK, is_session, session_bounds
from hybridtrader.market.schema import encode_symbols, side_signs
from hybridtrader.market.timeconv import utc_ns

FILL_COLUMNS = ("symbol", "side", "qty", "arrival_price", "fill_price", "ts")

# Parameters of the Rust core; the other SlippageConfig fields are used here.
_CORE_FIELDS = (
    "max_slippage_bps",
    "impact_exponent",
    "prior_impact_coef",
    "prior_spread_bps",
    "prior_adv_shares",
    "prior_daily_vol_bps",
    "learning_rate",
    "prior_strength_fills",
    "spread_learning_rate",
    "bucket_minutes",
)


SymbolsLike = str | Sequence[str] | pl.Series | np.ndarray


def ts_ns_column(values: pl.Series, name: str = "ts") -> np.ndarray:
    """UTC epoch ns (int64) of a timestamp column: Datetime with a time zone, or integers (already ns)."""
    dtype = values.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            raise ConfigError(f"{name} must be timezone-aware (UTC); got a naive {dtype} column")
        values = values.dt.convert_time_zone("UTC").dt.cast_time_unit("ns").to_physical()
    elif not dtype.is_integer():
        raise ConfigError(f"{name} must be a UTC Datetime column or epoch-ns integers, got {dtype}")
    if values.null_count():
        raise ConfigError(f"{name} has {values.null_count()} null values")
    return values.cast(pl.Int64).to_numpy()


def in_regular_session(ts_ns: np.ndarray) -> np.ndarray:
    """Per timestamp (UTC epoch ns): inside the regular NYSE session of its New York date (holidays and
    early closes from the calendar)."""
    dates = (
        pl.Series("ts", ts_ns).cast(pl.Datetime("ns", "UTC")).dt.convert_time_zone(str(NEW_YORK)).dt.date()
    )
    bounds = {}
    for d in dates.unique().to_list():
        if is_session(d):
            o, c = session_bounds(d)
            bounds[d] = (utc_ns(o), utc_ns(c))
        else:
            bounds[d] = (0, 0)
    opens = dates.replace_strict({d: b[0] for d, b in bounds.items()}, return_dtype=pl.Int64).to_numpy()
    closes = dates.replace_strict({d: b[1] for d, b in bounds.items()}, return_dtype=pl.Int64).to_numpy()
    return (ts_ns >= opens) & (ts_ns < closes)


def _ts_array(ts: Any, n: int) -> np.ndarray:
    if ts is None:
        return np.full(n, np.datetime64("now", "ns").astype(np.int64), dtype=np.int64)
    if isinstance(ts, int | np.integer):
        return np.full(n, int(ts), dtype=np.int64)
    if isinstance(ts, datetime):
        return np.full(n, utc_ns(ts), dtype=np.int64)
    if isinstance(ts, np.ndarray) and np.issubdtype(ts.dtype, np.datetime64):
        return np.ascontiguousarray(ts.astype("datetime64[ns]").view(np.int64))
    return ts_ns_column(pl.Series("ts", ts))


def _float_array(name: str, values: Any, n: int) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == 0:
        return np.full(n, float(a))
    if a.shape != (n,):
        raise ConfigError(f"{name} must have {n} rows, got shape {a.shape}")
    return np.ascontiguousarray(a)


def _require(frame: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what} frame lacks columns {missing}; it has {frame.columns}")


class SlippageModel(SlippageModelCore):
    """Slippage forecasts and their online learning, configured by `execution.slippage`.

    `forecast_slippage(symbol, side, qty, price, ts=None)` and `forecast_spread(symbol, ts=None)` are the
    Rust methods themselves (no Python wrapper on the hot path).

    Threads: forecasts may run concurrently (batch forecasts and `save` release the GIL); learning needs
    exclusive access, so learning while another thread is inside a batch forecast or a save raises
    RuntimeError ("already borrowed") instead of racing.
    """

    __slots__ = ("config",)
    config: SlippageConfig

    def __new__(cls, config: ConfigLike = None):
        section: SlippageConfig = config_section(config, "execution.slippage")
        self = super().__new__(cls, **{k: getattr(section, k) for k in _CORE_FIELDS})
        self.config = section
        if section.state_path is not None and Path(section.state_path).exists():
            self.load(section.state_path)
        return self

    # ------------------------------------------------------------------------------- forecasts
    def forecast_many(
        self,
        symbols: SymbolsLike,
        sides: str | Sequence[str] | pl.Series | np.ndarray,
        qty: Any,
        price: Any,
        ts: Any = None,
    ) -> np.ndarray:
        """Expected cost in bps per row (same formula and checks as `forecast_slippage`).

        `qty`/`price`: arrays (or scalars for every row); `symbols`/`sides`: one string or one per row;
        `ts`: None (now), epoch ns, an aware datetime, or an array/Series of them.
        """
        qty_a = np.asarray(qty, dtype=np.float64)
        n = len(qty_a) if qty_a.ndim else (1 if isinstance(symbols, str) else len(symbols))
        names, codes = encode_symbols(symbols, n)
        if len(codes) != n:
            raise ConfigError(f"symbols has {len(codes)} rows but qty has {n}")
        signs = side_signs(sides)
        if not isinstance(sides, str) and len(signs) != n:
            raise ConfigError(f"sides has {len(signs)} rows but qty has {n}")
        ts_a = _ts_array(ts, n)
        if len(ts_a) != n:
            raise ConfigError(f"ts has {len(ts_a)} rows but qty has {n}")
        return self.forecast_codes(
            names, codes, _float_array("qty", qty_a, n), _float_array("price", price, n), ts_a
        )

    # -------------------------------------------------------------------------------- learning
    def update_symbol_stats(
        self,
        symbol_or_fills: str | pl.DataFrame,
        side: str | None = None,
        qty: float | None = None,
        arrival_price: float | None = None,
        fill_price: float | None = None,
        ts: Any = None,
    ) -> dict[str, float] | int:
        """Learn from fills: one fill (`symbol, side, qty, arrival_price, fill_price, ts`) or a Polars
        frame with those columns (learned in time order).

        For one fill returns its realised `cost_bps`, the `half_spread_bps` it is net of and the
        `participation_term_bps` (daily_vol_bps * (qty / ADV)^exponent); for a frame, the number of fills.
        """
        if isinstance(symbol_or_fills, pl.DataFrame):
            if any(v is not None for v in (side, qty, arrival_price, fill_price, ts)):
                raise ConfigError("pass either a fills frame or one fill's fields, not both")
            return self._learn_fills(symbol_or_fills)
        if side is None or qty is None or arrival_price is None or fill_price is None:
            raise ConfigError("a single fill needs symbol, side, qty, arrival_price and fill_price")
        cost, half, term = self.update_fill(symbol_or_fills, side, qty, arrival_price, fill_price, ts)
        return {"cost_bps": cost, "half_spread_bps": half, "participation_term_bps": term}

    def _learn_fills(self, fills: pl.DataFrame) -> int:
        _require(fills, FILL_COLUMNS, "fills")
        fills = fills.with_columns(_ts=pl.Series(ts_ns_column(fills["ts"]))).sort("_ts", maintain_order=True)
        is_buy = side_signs(fills["side"], "side") > 0
        names, codes = encode_symbols(fills["symbol"], fills.height)
        return self.update_fills(
            names,
            codes,
            is_buy,
            _float_array("qty", fills["qty"].to_numpy(), fills.height),
            _float_array("arrival_price", fills["arrival_price"].to_numpy(), fills.height),
            _float_array("fill_price", fills["fill_price"].to_numpy(), fills.height),
            fills["_ts"].to_numpy(),
        )

    def learn_from_quote_bars(self, bars: pl.DataFrame) -> dict[str, int]:
        """Learn time-of-day spread profiles (EWMA per bucket and symbol, and pooled) from quote bars.

        Uses `spread_bps_mean` when present (bars from `aggregate_quotes`), otherwise the spread of raw
        `bid`/`ask` quotes. Rows are learned in time order. Bars outside the regular session of their day
        (pre-market, after hours, after an early close) are not learned — their spreads would distort the
        opening and closing buckets — and are counted: returns {"learned": n, "outside_session": m}.
        """
        _require(bars, ("symbol", "ts"), "quote bars")
        if "spread_bps_mean" in bars.columns:
            spread = bars["spread_bps_mean"].cast(pl.Float64)
        elif {"bid", "ask"} <= set(bars.columns):
            bid, ask = bars["bid"].cast(pl.Float64), bars["ask"].cast(pl.Float64)
            bad = int(((bid <= 0) | (ask < bid) | bid.is_null() | ask.is_null()).sum())
            if bad:
                raise ConfigError(f"quote bars have {bad} rows with bid <= 0 or ask < bid; filter them first")
            spread = (ask - bid) / ((ask + bid) / 2) * 1e4
        else:
            raise ConfigError(f"quote bars need spread_bps_mean or bid and ask columns; got {bars.columns}")
        if spread.null_count():
            raise ConfigError(f"spread_bps_mean has {spread.null_count()} null values")
        ts = ts_ns_column(bars["ts"])
        frame = (
            pl.DataFrame({"symbol": bars["symbol"], "ts": ts, "spread": spread})
            .filter(in_regular_session(ts))
            .sort("ts", maintain_order=True)
        )
        names, codes = encode_symbols(frame["symbol"], frame.height)
        learned = self.update_spreads(names, codes, frame["ts"].to_numpy(), frame["spread"].to_numpy())
        return {"learned": learned, "outside_session": bars.height - frame.height}

    def learn_from_daily_bars(self, bars: pl.DataFrame) -> pl.DataFrame:
        """Set ADV (mean volume of the last `daily_window` bars) and daily volatility (standard deviation
        of the last `daily_window` log close-to-close returns, in bps) per symbol.

        A symbol with fewer than three bars (under two returns) gets its ADV only. Returns the values
        set (symbol, adv_shares, daily_vol_bps).
        """
        _require(bars, ("symbol", "ts", "close", "volume"), "daily bars")
        w = self.config.daily_window
        stats = (
            bars.select("symbol", "ts", "close", "volume")
            .sort("symbol", "ts")
            .group_by("symbol", maintain_order=True)
            .agg(
                adv_shares=pl.col("volume").tail(w).cast(pl.Float64).mean(),
                daily_vol_bps=pl.col("close").tail(w + 1).log().diff().drop_nulls().std() * 1e4,
            )
        )
        for symbol, adv, vol in stats.iter_rows():
            self.set_daily_stats(symbol, adv, vol)
        return stats

    # ----------------------------------------------------------------------------- persistence
    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any], str]]:
        # Picklable (process pools, Ray): the config and the learned state travel, not the state file.
        return _restore, (self.config.model_dump(), self.to_json())

    def load(self, path: str | os.PathLike[str]) -> None:
        """Load state written by `save`; a corrupt or foreign file, or a format_version this version does
        not read (0 was never written), is a StateError naming the file."""
        try:
            super().load(Path(path))
        except ValueError as e:
            raise StateError(str(e)) from None

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        """Save the learned state as JSON atomically to `path` (default: `execution.slippage.state_path`)."""
        target = path if path is not None else self.config.state_path
        if target is None:
            raise ConfigError("save needs a path: none given and execution.slippage.state_path is not set")
        super().save(Path(target))


def _restore(config: dict[str, Any], state_json: str) -> SlippageModel:
    section = SlippageConfig.model_validate(config)
    model = SlippageModel(section.model_copy(update={"state_path": None}))
    model.load_json(state_json, "<pickled SlippageModel>")
    model.config = section
    return model
