"""Per-symbol bar features in Polars, each computed from bars at or before its row (no look-ahead).

A feature is named `kind` or `kind_N` (N overrides the default window): `rsi`, `rsi_7`, `ret_5`, ...
Definitions (textbook; every rolling statistic restarts per symbol):
- `zscore_N` (20): (close - SMA_N(close)) / std_N(close), std with ddof=1.
- `volume_zscore_N` (20): the same on volume.
- `rsi_N` (14): Wilder's RSI = 100 - 100 / (1 + avg_gain / avg_loss); gains and losses of close-to-close
  changes averaged with Wilder's smoothing (seed: simple mean of the first N changes, then
  avg_t = avg_{t-1} + (x_t - avg_{t-1}) / N). 100 when there are no losses, 50 when the price never moved.
  First value on the bar N (0-based), like TA-Lib.
- `atr_N` (14): Wilder's ATR: true range max(high - low, |high - prev close|, |low - prev close|) from the
  second bar on, Wilder-smoothed; first value on bar N (TA-Lib's convention). In price units.
- `natr_N` (14): ATR / close, in basis points (comparable across symbols).
- `adx_N` (14): Wilder's ADX: +DM / -DM (the larger positive move, else 0), Wilder-smoothed with the true
  range into +DI / -DI, DX = 100 |+DI - -DI| / (+DI + -DI), ADX = Wilder average of DX; first value on
  bar 2N - 1 (TA-Lib's lookback).
- `ema_slope_N` (20): EMA_N(t) / EMA_N(t-1) - 1 in basis points; EMA with alpha 2/(N+1) seeded by the SMA
  of the first N closes.
- `trend_strength_N` (30): (EMA_fast - EMA_N) / ATR_14 with fast = max(2, N // 3): a MACD-style gap in
  units of the average true range.
- `ret_N` (1): log return over N bars, ln(close_t / close_{t-N}).
- `rv_N` (20): realised volatility, std (ddof=1) of the 1-bar log returns over N bars, not annualised.
- `spread_N` (20): mean over N bars of the relative spread in basis points: (ask - bid) / mid from quote
  columns `bid`/`ask` when the bars carry them, else the Corwin-Schultz (2012) high-low estimator on the
  pair of bars (t-1, t) (negative estimates set to 0, no overnight adjustment).
Rolling windows run across session boundaries (the overnight gap is part of the history).
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import polars as pl

from hybridtrader._core import seeded_ewm
from hybridtrader.errors import DataError

# Bump when any definition below changes: it is part of the feature hash that keys the FeatureStore.
FEATURE_DEFINITIONS_VERSION = 2

BAR_COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume")

_NAME = re.compile(r"^([a-z_]+?)(?:_(\d+))?$")

# The computation runs in stages of `with_columns`; intermediate columns (names starting with "_") are
# shared between features, so e.g. the true range or ATR_14 is computed once however many features use it,
# and no expression is repeated inside another. A stage holds Polars expressions and `Smoother`s (the
# seeded EWMs, run in Rust after the stage's expressions). Rows are in (symbol, ts) order. Rolling windows
# and smoothers run per symbol (`per_symbol`); a look back of n bars is a shift of the whole frame with each
# symbol's first n rows masked (`lag`), which is elementwise: a per-symbol window costs Polars a group
# pass per expression, and the values are the same.
Stages = dict[int, dict[str, "pl.Expr | Smoother"]]
ROW = "_i"  # column: row number within the symbol
GROUP = "_g"  # column: the symbol's run number (0, 1, ...), ascending and flagged sorted


def per_symbol(x: pl.Expr) -> pl.Expr:
    """`x` evaluated on each symbol's rows alone (its windows and recursions restart per symbol).

    Partitioned by the sorted integer run number, not the symbol string: the same groups on rows in
    (symbol, ts) order, and Polars takes contiguous slices of a sorted key instead of hashing every row
    (a per-symbol EWM costs about a fifth of what it costs grouped by the string)."""
    return x.over(GROUP)


def symbol_runs() -> pl.Expr:
    """Run number of each row's symbol on rows in (symbol, ts) order: 0 for the first symbol, +1 at each
    change of symbol (elementwise)."""
    changed = (pl.col("symbol") != pl.col("symbol").shift(1)).fill_null(False)
    return changed.cast(pl.UInt32).cum_sum().set_sorted()


def row_in_symbol() -> pl.Expr:
    """Each row's number within its symbol on rows in (symbol, ts) order: the row index minus the index of
    the symbol's first row (elementwise, not a per-symbol pass)."""
    i = pl.int_range(pl.len())
    first = pl.when(pl.col("symbol") != pl.col("symbol").shift(1)).then(i).forward_fill().fill_null(0)
    return i - first


def lag(x: pl.Expr, n: int = 1) -> pl.Expr:
    """`x` of n rows earlier in the same symbol; null on the symbol's first n rows."""
    return pl.when(pl.col(ROW) >= n).then(x.shift(n))


@dataclass(frozen=True)
class Smoother:
    """A seeded exponential smoother of column `source`, per symbol: missing before row `seed_row` of the
    symbol, the SMA of the `n` values ending there on it (the seed), then the recursion
    a_t = a_{t-1} + alpha (x_t - a_{t-1}) (an EWM with adjust=False; a missing row decays the weight).

    `expr()` is its Polars definition; `compute_features` runs the recursion in Rust
    (`_core.seeded_ewm`, the same operations, bit for bit) with the seeds from Polars' rolling mean on
    each symbol's first rows only: a per-symbol Polars EWM costs about ten times the kernel."""

    source: str
    n: int
    alpha: float
    seed_row: int

    def seed(self) -> pl.Expr:
        """The SMA of the `n` values ending on each row, per symbol: the seed is its value on `seed_row`."""
        return per_symbol(pl.col(self.source).rolling_mean(self.n))

    def expr(self) -> pl.Expr:
        """The smoother as one Polars expression (what the kernel computes)."""
        x, row = pl.col(self.source), pl.col(ROW)
        seeded = (
            pl.when(row < self.seed_row)
            .then(None)
            .when(row == self.seed_row)
            .then(x.rolling_mean(self.n))
            .otherwise(x)
        )
        return per_symbol(seeded.ewm_mean(alpha=self.alpha, adjust=False))


def wilder(source: str, n: int, first: int) -> Smoother:
    """Wilder's smoothing of column `source` whose first valid value is at row `first`: SMA seed at row
    first + n - 1, then a_t = a_{t-1} + (x_t - a_{t-1}) / n (alpha 1/n); nulls before the seed row make
    the recursion start exactly at the seed."""
    return Smoother(source, n, 1.0 / n, first + n - 1)


def ema(source: str, n: int) -> Smoother:
    """EMA of column `source` with alpha 2/(n+1), seeded by the SMA of the first n values (first value on
    row n - 1)."""
    return Smoother(source, n, 2.0 / (n + 1), n - 1)


def _finite(x: pl.Expr) -> pl.Expr:
    """Division by a zero spread/std gives inf or NaN; a feature is then missing (null), never infinite."""
    return pl.when(x.is_finite()).then(x).otherwise(None)


def zscore(x: pl.Expr, key: str, n: int) -> Stages:
    """(x - SMA_n) / std_n per symbol; the ratio is a column (`key` names it) before `_finite` reads it
    twice: inside a per-symbol window the two reads were two evaluations of both rolling windows."""
    return {
        1: {f"_z_{key}{n}": per_symbol((x - x.rolling_mean(n)) / x.rolling_std(n))},
        2: {"": _finite(pl.col(f"_z_{key}{n}"))},
    }


def log_return(n: int) -> pl.Expr:
    return (pl.col("close") / pl.col("close").shift(n)).log()


def _base() -> dict[str, pl.Expr]:
    """Stage 0: per-bar inputs of the smoothers."""
    prev = lag(pl.col("close"))
    tr = pl.max_horizontal(
        pl.col("high") - pl.col("low"), (pl.col("high") - prev).abs(), (pl.col("low") - prev).abs()
    )
    up = pl.col("high") - lag(pl.col("high"))
    down = lag(pl.col("low")) - pl.col("low")
    delta = pl.col("close") - prev
    return {
        # True range from the second bar on (the first has no previous close), as TA-Lib does.
        "_tr": pl.when(prev.is_null()).then(None).otherwise(tr),
        "_gain": delta.clip(lower_bound=0.0),
        "_loss": (-delta).clip(lower_bound=0.0),
        "_pdm": pl.when((up > down) & (up > 0)).then(up).otherwise(0.0),
        "_mdm": pl.when((down > up) & (down > 0)).then(down).otherwise(0.0),
    }


def _atr(n: int) -> tuple[str, pl.Expr]:
    return f"_atr{n}", wilder("_tr", n, first=1)


def _rsi(n: int, q: bool) -> Stages:
    gain, loss = pl.col(f"_gain{n}"), pl.col(f"_loss{n}")
    rsi = pl.when(loss > 0).then(100.0 - 100.0 / (1.0 + gain / loss)).when(gain > 0).then(100.0)
    return {
        1: {f"_gain{n}": wilder("_gain", n, 1), f"_loss{n}": wilder("_loss", n, 1)},
        2: {"": rsi.when(gain == 0).then(50.0)},
    }


def _adx(n: int) -> Stages:
    atr = pl.col(f"_atr{n}")
    plus_di = 100.0 * pl.col(f"_pdm{n}") / atr
    minus_di = 100.0 * pl.col(f"_mdm{n}") / atr
    di_sum = plus_di + minus_di
    dx = pl.when(di_sum > 0).then(100.0 * (plus_di - minus_di).abs() / di_sum).otherwise(0.0)
    return {
        1: dict([_atr(n)], **{f"_pdm{n}": wilder("_pdm", n, 1), f"_mdm{n}": wilder("_mdm", n, 1)}),
        # DX is valid from row n (the first smoothed DI); the ADX seed is the mean of DX rows n .. 2n-1.
        2: {f"_dx{n}": dx},
        3: {"": wilder(f"_dx{n}", n, first=n)},
    }


def _trend_strength(n: int) -> Stages:
    fast = max(2, n // 3)
    return {
        1: dict([_atr(14)], **{f"_ema{fast}": ema("close", fast), f"_ema{n}": ema("close", n)}),
        2: {"": _finite((pl.col(f"_ema{fast}") - pl.col(f"_ema{n}")) / pl.col("_atr14"))},
    }


def corwin_schultz() -> Stages:
    """Two-bar Corwin-Schultz spread estimate (a share of price) for the pair (t-1, t): column
    `_rel_spread` at level 3. Every reused term is its own column (squared log range, beta and gamma,
    exp(alpha)): written as one expression Polars evaluated them several times over (about 2.5x the work)."""
    hl, beta, gamma, e_alpha = pl.col("_hl"), pl.col("_cs_beta"), pl.col("_cs_gamma"), pl.col("_cs_ealpha")
    hi2 = pl.max_horizontal(pl.col("high"), lag(pl.col("high")))
    lo2 = pl.min_horizontal(pl.col("low"), lag(pl.col("low")))
    # Times 1/k, not divided by k: Polars divides a column by a literal sometimes exactly, sometimes through
    # the reciprocal (the same rows differed in the last bit between two frames); a product is one rounding.
    inv_k = 1.0 / (3.0 - 2.0 * math.sqrt(2.0))
    alpha = ((2.0 * beta).sqrt() - beta.sqrt()) * inv_k - (gamma * inv_k).sqrt()
    s = 2.0 * (e_alpha - 1.0) / (1.0 + e_alpha)
    return {
        0: {"_hl": (pl.col("high") / pl.col("low")).log() ** 2},
        1: {"_cs_beta": hl + lag(hl), "_cs_gamma": (hi2 / lo2).log() ** 2},
        2: {"_cs_ealpha": alpha.exp()},
        3: {"_rel_spread": pl.when(beta.is_null()).then(None).otherwise(s.clip(lower_bound=0.0))},
    }


def _spread(n: int, has_quotes: bool) -> Stages:
    if has_quotes:
        rel = (pl.col("ask") - pl.col("bid")) / ((pl.col("ask") + pl.col("bid")) / 2.0)
        stages: Stages = {1: {"_rel_spread": rel}}
    else:
        stages = corwin_schultz()
    level = max(stages) + 1
    return {**stages, level: {"": per_symbol(1e4 * pl.col("_rel_spread").rolling_mean(n))}}


def _one(expr: pl.Expr) -> Stages:
    return {1: {"": expr}}


@dataclass(frozen=True)
class _Kind:
    default: int
    build: Callable[[int, bool], Stages]  # "" names the feature itself
    minimum: int = 2


_KINDS: dict[str, _Kind] = {
    "zscore": _Kind(20, lambda n, q: zscore(pl.col("close"), "close", n)),
    "volume_zscore": _Kind(20, lambda n, q: zscore(pl.col("volume").cast(pl.Float64), "volume", n)),
    "rsi": _Kind(14, _rsi),
    "atr": _Kind(14, lambda n, q: {1: dict([_atr(n)]), 2: {"": pl.col(f"_atr{n}")}}),
    "natr": _Kind(14, lambda n, q: {1: dict([_atr(n)]), 2: {"": 1e4 * pl.col(f"_atr{n}") / pl.col("close")}}),
    "adx": _Kind(14, lambda n, q: _adx(n)),
    "ema_slope": _Kind(
        20,
        lambda n, q: {
            1: {f"_ema{n}": ema("close", n)},
            2: {"": 1e4 * (pl.col(f"_ema{n}") / lag(pl.col(f"_ema{n}")) - 1.0)},
        },
    ),
    "trend_strength": _Kind(30, lambda n, q: _trend_strength(n), minimum=4),
    "ret": _Kind(1, lambda n, q: _one((pl.col("close") / lag(pl.col("close"), n)).log()), minimum=1),
    "rv": _Kind(20, lambda n, q: _one(per_symbol(log_return(1).rolling_std(n)))),
    "spread": _Kind(20, _spread, minimum=1),
}


@dataclass(frozen=True)
class FeatureSpec:
    name: str  # as written in the config
    kind: str
    window: int


def parse_feature(name: str) -> FeatureSpec:
    """`rsi` -> rsi with 14 bars, `rsi_7` -> 7 bars; unknown names are a ValueError listing the known ones."""
    if name in _KINDS:
        return FeatureSpec(name, name, _KINDS[name].default)
    m = _NAME.match(name)
    if m and m.group(1) in _KINDS and m.group(2) is not None:
        kind, window = m.group(1), int(m.group(2))
        if window < _KINDS[kind].minimum:
            raise DataError(f"feature {name!r}: window must be >= {_KINDS[kind].minimum}, got {window}")
        return FeatureSpec(name, kind, window)
    raise DataError(f"unknown feature {name!r}; known kinds: {sorted(_KINDS)} (optionally with _N)")


def feature_hash(names: Sequence[str]) -> str:
    """Stable hash of the feature definitions (kinds, windows, definitions version) used as a store key."""
    specs = sorted((s.name, s.kind, s.window) for s in map(parse_feature, names))
    payload = orjson.dumps({"version": FEATURE_DEFINITIONS_VERSION, "features": specs})
    return hashlib.sha256(payload).hexdigest()[:16]


def check_bars(bars: pl.DataFrame) -> None:
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise DataError(f"bars: missing columns {missing} (have {bars.columns})")
    if bars.height == 0:
        raise DataError("bars: the frame is empty")


def out_of_order() -> pl.Expr:
    """True when some row is not in (symbol, ts) order after the one before it."""
    sym, ts = pl.col("symbol"), pl.col("ts")
    return ((sym < sym.shift(1)) | ((sym == sym.shift(1)) & (ts < ts.shift(1)))).any()


def normalise_bars(bars: pl.DataFrame) -> pl.DataFrame:
    """Checked bars sorted by (symbol, ts) with ts as Datetime("ns", "UTC") (a naive ts is taken as UTC)."""
    check_bars(bars)
    dtype = bars.schema["ts"]
    if not isinstance(dtype, pl.Datetime):
        raise DataError(f"bars: column ts must be a Datetime, got {dtype}")
    frame = bars
    if dtype != pl.Datetime("ns", "UTC"):
        ts = pl.col("ts").dt.cast_time_unit("ns")
        ts = ts.dt.replace_time_zone("UTC") if dtype.time_zone is None else ts.dt.convert_time_zone("UTC")
        frame = frame.with_columns(ts)
    # Rows already in (symbol, ts) order (the usual case) are not re-sorted; duplicates are then neighbours.
    sym, ts_col = pl.col("symbol"), pl.col("ts")
    same_key = ((sym == sym.shift(1)) & (ts_col == ts_col.shift(1))).any()
    unordered, duplicated = frame.select(out_of_order(), same_key.alias("dup")).row(0)
    if unordered:
        frame = frame.sort("symbol", "ts")
        duplicated = frame.select(same_key).item()
    if duplicated:
        raise DataError("bars: duplicate (symbol, ts) rows")
    return frame


@dataclass(frozen=True)
class SortedBars:
    """Normalised bars (`normalise_bars`) with each row's number within its symbol (`row_in_symbol`) and
    its symbol's run number (`symbol_runs`): derived once and handed to every feature and label pass on
    these bars. `bars` may gain columns (`with_bars`), never lose or reorder rows."""

    bars: pl.DataFrame
    row: pl.Series  # named ROW
    group: pl.Series  # named GROUP, flagged sorted

    @classmethod
    def of(cls, bars: pl.DataFrame) -> SortedBars:
        frame = normalise_bars(bars)
        row, group = frame.select(row_in_symbol().alias(ROW), symbol_runs().alias(GROUP)).get_columns()
        return cls(frame, row, group)

    def with_bars(self, bars: pl.DataFrame) -> SortedBars:
        """The same rows with other columns (e.g. a P&L price added)."""
        if bars.height != self.bars.height:
            raise DataError(f"bars: {bars.height} rows given for {self.bars.height} sorted bars")
        return SortedBars(bars, self.row, self.group)


def _stages(names: Sequence[str], columns: Sequence[str]) -> Stages:
    """The stages that compute `names` on bars with `columns`."""
    has_quotes = "bid" in columns and "ask" in columns
    stages: Stages = {}
    for spec in map(parse_feature, names):
        for level, exprs in _KINDS[spec.kind].build(spec.window, has_quotes).items():
            for name, expr in exprs.items():
                stages.setdefault(level, {})[name or spec.name] = expr
    # of stage 0's per-bar inputs, only those a later stage reads (each is its own column: no other value
    # depends on one left out)
    read = _read(stages)
    stages[0] = {**{n: e for n, e in _base().items() if n in read}, **stages.get(0, {})}
    return stages


def _read(stages: Stages) -> set[str]:
    """The columns the stages' expressions and smoothers read."""
    read: set[str] = set()
    for exprs in stages.values():
        for e in exprs.values():
            read.update([e.source] if isinstance(e, Smoother) else e.meta.root_names())
    return read


@functools.lru_cache(maxsize=64)
def feature_inputs(names: tuple[str, ...], columns: tuple[str, ...]) -> tuple[str, ...]:
    """The columns of bars with `columns` that `compute_features(bars, names)` reads, in their order (the
    symbol and ts always): a caller may hand it a `SortedBars` of those alone. Cached: building the
    expressions costs more than a batch's numpy work."""
    read = _read(_stages(names, columns)) | {"symbol", "ts"}
    return tuple(c for c in columns if c in read)


def compute_features(bars: pl.DataFrame | SortedBars, names: Sequence[str]) -> pl.DataFrame:
    """Features for every bar: columns symbol, ts and one per name, sorted by (symbol, ts)."""
    if not names:
        raise DataError("features: the feature list is empty")
    ready = bars if isinstance(bars, SortedBars) else SortedBars.of(bars)
    frame = ready.bars
    stages = _stages(names, frame.columns)
    frame = frame.with_columns(ready.row, ready.group)
    for level in sorted(stages):
        exprs = [e.alias(n) for n, e in stages[level].items() if isinstance(e, pl.Expr)]
        frame = frame.with_columns(exprs)
        smoothers = {n: e for n, e in stages[level].items() if isinstance(e, Smoother)}
        if smoothers:
            frame = frame.with_columns(smooth(frame, smoothers))
    # Rechunked: every later gather, comparison and to_numpy then reads one buffer per column.
    return frame.select("symbol", "ts", *(pl.col(n).cast(pl.Float64) for n in names)).rechunk()


def smooth(frame: pl.DataFrame, smoothers: dict[str, Smoother]) -> list[pl.Series]:
    """Each smoother's column on `frame` (rows in (symbol, ts) order with the ROW and GROUP columns): the
    recursion in Rust on Float64 sources, seeded from the rolling means of each symbol's first rows (a
    rolling mean on a row reads only the symbol's rows up to it, so those rows give the same seed as the
    whole symbol); other source types (the recursion runs in their precision) through Polars."""
    native = {n: s for n, s in smoothers.items() if frame.schema[s.source] == pl.Float64}
    out = [s.expr().alias(n) for n, s in smoothers.items() if n not in native]
    polars = frame.select(out).get_columns() if out else []
    if not native:
        return polars
    group = frame[GROUP].to_numpy()
    runs = int(group[-1]) + 1
    bounds = np.searchsorted(group, np.arange(runs + 1)).astype(np.int64)  # each symbol's first row, then n
    last = max(s.seed_row for s in native.values())
    seeds = (s.seed().alias(n) for n, s in native.items())
    head = frame.lazy().filter(pl.col(ROW) <= last).select(GROUP, ROW, *seeds).collect()  # one query
    columns = []
    for name, s in native.items():
        at = head.filter(pl.col(ROW) == s.seed_row)
        rows, seed_col = at[GROUP].to_numpy(), at[name]
        seed = np.full(runs, np.nan)
        seed[rows] = seed_col.to_numpy()
        seeded = np.zeros(runs, dtype=bool)
        seeded[rows] = seed_col.is_not_null().to_numpy()
        x = frame[s.source]
        value, present = seeded_ewm(
            x.to_numpy(), x.is_not_null().to_numpy(), bounds, seed, seeded, s.seed_row, s.alpha
        )
        columns.append(pl.Series(name, np.ma.masked_array(value, mask=~present)))  # masked rows: null
    return polars + columns
