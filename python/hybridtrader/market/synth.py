"""Deterministic synthetic US-equity market: trades, quotes, 1-minute and daily bars (N symbols x D sessions).

The generator is built in two layers that share one random stream per symbol, so `ticks=True` and
`ticks=False` with the same seed follow the same minute-level price path:

1. A minute-level model per symbol and session (regular hours only, from `hybridtrader.market.calendar`,
   holidays skipped, 13:00 closes on early-close days):
   - log returns r = sigma_min * vol_profile(t) * v(t) * y(t) + drift, where y mixes a market factor
     (loading from the symbol's beta), a sector factor and an idiosyncratic shock (correlation across
     symbols);
   - stochastic volatility v = exp(a*h + b*x - a^2 - b^2) (E[v^2] = 1): h is a daily log-volatility AR(1)
     (half market-wide, half idiosyncratic), x an intraday log-OU with a ~30-minute memory;
   - U-shaped intraday activity (trade intensity high at the open and the close) with volatility following
     its square root; reverse-J spread profile (widest at the open, narrowing, a small rise into the close);
   - overnight gaps (20% of the daily variance, same factor structure) and earnings gaps: quarterly
     earnings dates per symbol, "bmo" moves the open of that session, "amc" the next one; the gap follows
     the EPS surprise (eps_actual vs eps_estimate), and activity and volatility are higher that session.
2. Detail: with `ticks=True` Poisson quote/trade events inside each minute, the efficient price between
   minute points drawn as a Brownian bridge, quotes rounded to cents around it (bid < ask), trades at the
   touch (a few inside the spread) of the quote they come with, lognormal round-lot-ish sizes; 1-minute
   bars are aggregated from the trades by the Rust bar engine (`aggregate_trades`). With `ticks=False`
   the 1-minute bars are drawn directly from the same model (high/low from the exact Brownian-bridge
   extreme distribution), which is much faster.

Planted predictable components (default off; exactly absent at 0, where returns are unpredictable):
- `mean_reversion` (kappa in [0, 1)): each minute's return reverses kappa times a weighted sum of the last
  5 minutes' returns (weights 1/2, 1/4, 1/8, 1/16, 1/16), an AR(5) within each session. The lag-1
  autocorrelation of 1-minute returns is about -kappa/2 (-0.048 at 0.1, -0.14 at 0.3, -0.22 at 0.5). The
  output is rescaled by (1 + kappa) so the daily variance is unchanged (minute variance rises a little).
- `trend` (t >= 0): a persistent daily drift per symbol, AR(1) with phi = 0.9 across sessions and standard
  deviation t * daily_vol, spread evenly over the session's minutes. The lag-1 autocorrelation of the
  intraday (open-to-close) return is about 0.9 t^2 / (0.8 + t^2) (0.07 at 0.25, 0.21 at 0.5, 0.5 at 1),
  higher on market-neutral returns (the drift is idiosyncratic).
- `regime_reversion` (c in [0, 1)): the same AR(5) on the last minutes' shocks with a coefficient that
  depends on the minute's volatility: +c (reversal) while it is above `REGIME_SIGMA`, -c (continuation)
  while below. A rule that fades every stretched move wins in one regime and loses in the other, about
  break-even overall; bar-range and realised-volatility features tell the regimes apart (a signal a model
  can add to the rule). No variance correction: the volatile regime's variance falls a little, the calm
  one's rises.
In tick mode, last-trade prices also carry bid-ask bounce (trades alternate between bid and ask), a real
microstructure effect that gives last-trade minute returns a small negative autocorrelation even with
`mean_reversion=0`; mid-quote returns and `ticks=False` bars have none (apart from cent rounding, which
adds a tiny negative autocorrelation to low-priced symbols, as on a real tape).

`.symbols` reports sector, shortability, `beta` (to the market factor), `daily_vol` (the model's daily
close-to-close volatility as a fraction, before the knobs and earnings gaps) and `adv` (the realised mean
daily share volume of the generated sessions).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.errors import DataError
from hybridtrader.market import calendar
from hybridtrader.market.bars import aggregate_trades, rollup
from hybridtrader.market.schema import BAR_SCHEMA, QUOTE_SCHEMA, TRADE_SCHEMA
from hybridtrader.market.timeconv import NS_PER_MINUTE, utc_ns

FORMAT_VERSION = 1
FULL_SESSION_MINUTES = 390
SECTORS = (
    "Technology", "Financials", "Health Care", "Energy", "Industrials", "Consumer Discretionary",
    "Consumer Staples", "Utilities", "Materials", "Real Estate", "Communication Services",
)
MARKET_DAILY_VOL = 0.011
SECTOR_LOADING = 0.3
OVERNIGHT_SHARE = 0.2  # share of the daily variance that arrives overnight
REVERSAL_WEIGHTS = np.array([0.5, 0.25, 0.125, 0.0625, 0.0625])
# regime_reversion: minute volatility above this (a 2%-daily-volatility symbol's average minute) reverts
REGIME_SIGMA = 0.6 * 0.02 * np.sqrt((1 - OVERNIGHT_SHARE) / 390)
TREND_PHI = 0.9
DAILY_VOL_PHI, DAILY_VOL_LOAD = 0.85, 0.3
INTRADAY_VOL_PHI, INTRADAY_VOL_LOAD = float(np.exp(-1 / 30)), 0.25
EARNINGS_ACTIVITY, EARNINGS_VOL = 2.5, 1.5

SYMBOLS_SCHEMA = {
    "symbol": pl.String, "sector": pl.String, "shortable": pl.Boolean, "easy_to_borrow": pl.Boolean,
    "adv": pl.Float64, "daily_vol": pl.Float64, "beta": pl.Float64,
}
EARNINGS_SCHEMA = {
    "symbol": pl.String, "date": pl.Date, "hour": pl.String,
    "eps_estimate": pl.Float64, "eps_actual": pl.Float64,
}
FRAMES = {
    "trades": TRADE_SCHEMA, "quotes": QUOTE_SCHEMA, "bars_1m": BAR_SCHEMA, "bars_1d": BAR_SCHEMA,
    "symbols": SYMBOLS_SCHEMA, "earnings": EARNINGS_SCHEMA,
}


@dataclass
class SyntheticMarket:
    """Generated market frames (DESIGN.md schemas) plus the parameters that produced them."""

    trades: pl.DataFrame
    quotes: pl.DataFrame
    bars_1m: pl.DataFrame
    bars_1d: pl.DataFrame
    symbols: pl.DataFrame
    earnings: pl.DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    def write(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write every frame as `<name>.parquet` and `meta.json` into `directory` (atomically, per file)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        # meta.json goes last: until it is written again the directory reads as incomplete, not as old data.
        (out / "meta.json").unlink(missing_ok=True)
        written = []
        for name in FRAMES:
            path = out / f"{name}.parquet"
            _atomic_write(path, lambda f, name=name: getattr(self, name).write_parquet(f))
            written.append(path)
        meta = {"format_version": FORMAT_VERSION, "params": self.params}
        path = out / "meta.json"
        _atomic_write(path, lambda f: f.write(json.dumps(meta, indent=2, sort_keys=True).encode()))
        written.append(path)
        return written

    @classmethod
    def read(cls, directory: str | os.PathLike[str]) -> SyntheticMarket:
        """Read a market written by `write`; a missing, corrupt or foreign file is a ValueError naming it."""
        src = Path(directory)
        meta_path = src / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
            version = meta["format_version"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"{meta_path}: not a synthetic market directory ({e})") from None
        if version != FORMAT_VERSION:
            raise DataError(f"{meta_path}: format_version {version!r}, expected {FORMAT_VERSION}")
        frames = {}
        for name, schema in FRAMES.items():
            path = src / f"{name}.parquet"
            try:
                df = pl.read_parquet(path)
            except Exception as e:  # polars raises several types for a corrupt or missing file
                raise DataError(f"{path}: cannot read parquet ({e})") from None
            if dict(df.schema) != schema:
                raise DataError(f"{path}: schema {dict(df.schema)} differs from the expected {schema}")
            frames[name] = df
        return cls(**frames, params=meta.get("params", {}))


def _atomic_write(path: Path, write: Callable[[Any], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def symbol_names(n: int) -> list[str]:
    """Deterministic ticker-like names: SAAA, SAAB, ... (4 upper-case letters)."""
    if not 0 < n <= 26**3:
        raise DataError(f"symbols must be between 1 and {26**3}, got {n}")
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return ["S" + letters[i // 676] + letters[i // 26 % 26] + letters[i % 26] for i in range(n)]


def _session_dates(start: date, count: int) -> list[date]:
    first = start if calendar.is_session(start) else calendar.next_session(start)
    out = [first]
    while len(out) < count:
        out.append(calendar.next_session(out[-1]))
    return out


def _lfilter(a: np.ndarray, x: np.ndarray, axis: int) -> np.ndarray:
    """All-pole recursive filter y[t] = x[t] - a[1] y[t-1] - ... along `axis`."""
    from scipy.signal import lfilter  # imported here: scipy.signal is slow to import for every CLI command

    return lfilter([1.0], a, x, axis=axis)


def _ar1(shocks: np.ndarray, phi: float, axis: int = -1) -> np.ndarray:
    """Stationary unit-variance AR(1) along `axis` driven by standard normal shocks."""
    u = np.sqrt(1 - phi * phi) * shocks
    first = [slice(None)] * shocks.ndim
    first[axis] = slice(0, 1)
    u[tuple(first)] = shocks[tuple(first)]
    return _lfilter(np.array([1.0, -phi]), u, axis)


@dataclass
class _Universe:
    """Everything shared across symbols: sessions, intraday profiles, factor shocks, symbol parameters."""

    open_ns: np.ndarray  # (S,) session open, UTC ns
    n_min: np.ndarray  # (S,) minutes in each session
    valid: np.ndarray  # (S, M) minute exists
    activity: np.ndarray  # (S, M) U-shaped trade intensity, mean 1 per session
    spread_shape: np.ndarray  # (S, M) reverse-J spread multiplier, about 1 at midday
    z_mkt: np.ndarray  # (S, M) market factor minute shocks
    z_sec: np.ndarray  # (n_sectors, S, M)
    g_mkt: np.ndarray  # (S,) overnight market shocks
    g_sec: np.ndarray  # (n_sectors, S)
    h_mkt: np.ndarray  # (S,) market daily log-vol state
    sector: np.ndarray
    price0: np.ndarray
    daily_vol: np.ndarray
    load_mkt: np.ndarray
    liquidity: np.ndarray
    mean_size: np.ndarray
    spread_bps: np.ndarray
    depth_lots: np.ndarray
    event_day: np.ndarray  # (N, S) bool: earnings gap lands at this session's open
    event_gap: np.ndarray  # (N, S) earnings gap in units of daily_vol


def _universe(
    rng: np.random.Generator, names: list[str], sessions: list[date], price0: np.ndarray,
    earnings: pl.DataFrame, surprise: dict[tuple[str, date], float],
) -> _Universe:
    n, s, m = len(names), len(sessions), FULL_SESSION_MINUTES
    bounds = [calendar.session_bounds(d) for d in sessions]
    open_ns = np.array([utc_ns(o) for o, _ in bounds], dtype=np.int64)
    n_min = np.array([int((c - o).total_seconds()) // 60 for o, c in bounds], dtype=np.int64)
    idx = np.arange(m)[None, :]
    valid = idx < n_min[:, None]
    x = np.minimum((idx + 0.5) / n_min[:, None], 1.0)
    activity = np.where(valid, 1 + 2.2 * np.exp(-x / 0.05) + 1.4 * np.exp(-(1 - x) / 0.04), 0.0)
    activity /= activity.sum(axis=1, keepdims=True) / n_min[:, None]
    spread_shape = 1 + 2.0 * np.exp(-x / 0.06) + 0.2 * np.exp(-(1 - x) / 0.03)

    daily_vol = np.clip(np.exp(rng.normal(np.log(0.02), 0.35, n)), 0.008, 0.06)
    beta = np.clip(rng.normal(1.0, 0.3, n), 0.3, 2.0)
    load_mkt = np.clip(beta * MARKET_DAILY_VOL / daily_vol, 0.05, 0.85)
    liquidity = np.exp(rng.normal(0.0, 0.6, n))
    liquidity /= liquidity.mean()
    spread_bps = np.clip(2.0 * liquidity**-0.4 * (60.0 / price0) ** 0.3, 0.8, 40.0)

    event_day = np.zeros((n, s), dtype=bool)
    event_gap = np.zeros((n, s))
    index = {d: j for j, d in enumerate(sessions)}
    row = {name: i for i, name in enumerate(names)}
    for sym, d, hour in earnings.select("symbol", "date", "hour").iter_rows():
        j = index.get(d)
        if j is None:
            continue
        j += hour == "amc"
        if j < s:
            event_day[row[sym], j] = True
            event_gap[row[sym], j] = 2.0 * surprise[(sym, d)] + 0.7 * rng.standard_normal()
    return _Universe(
        open_ns=open_ns, n_min=n_min, valid=valid, activity=activity,
        spread_shape=spread_shape, z_mkt=rng.standard_normal((s, m)),
        z_sec=rng.standard_normal((len(SECTORS), s, m)), g_mkt=rng.standard_normal(s),
        g_sec=rng.standard_normal((len(SECTORS), s)), h_mkt=_ar1(rng.standard_normal(s), DAILY_VOL_PHI),
        sector=rng.integers(0, len(SECTORS), n), price0=price0, daily_vol=daily_vol, load_mkt=load_mkt,
        liquidity=liquidity, mean_size=np.exp(rng.normal(np.log(180.0), 0.3, n)), spread_bps=spread_bps,
        depth_lots=np.exp(rng.normal(np.log(4.0), 0.4, n)) * liquidity**0.3,
        event_day=event_day, event_gap=event_gap,
    )


@dataclass
class _Minutes:
    """One symbol's minute-level model on the valid minutes of every session, flattened in time order."""

    start_ns: np.ndarray  # minute start, UTC ns
    a: np.ndarray  # log price at the minute start
    b: np.ndarray  # log price at the minute end
    sigma: np.ndarray  # Brownian scale of the minute (log-return sd)
    lam: np.ndarray  # expected trades in the minute
    spread_bps: np.ndarray


def _regime_filter(z: np.ndarray, coefficient: np.ndarray) -> np.ndarray:
    """y[t] = z[t] - k[t] sum_j w_j y[t-j] along each session (axis 1): the AR(5) reversal of
    `mean_reversion` with a coefficient per minute."""
    y = z.copy()
    lags = len(REVERSAL_WEIGHTS)
    for t in range(1, z.shape[1]):
        past = y[:, max(0, t - lags) : t][:, ::-1]  # y[t-1], y[t-2], ...
        y[:, t] -= coefficient[:, t] * (past @ REVERSAL_WEIGHTS[: past.shape[1]])
    return y


def _symbol_minutes(
    rng: np.random.Generator, u: _Universe, i: int, trades_per_minute: float, mean_reversion: float,
    trend: float, regime_reversion: float = 0.0,
) -> _Minutes:
    s, m = u.valid.shape
    a_m = u.load_mkt[i]
    c_i = np.sqrt(1 - a_m**2 - SECTOR_LOADING**2)
    sec = u.sector[i]
    z = a_m * u.z_mkt + SECTOR_LOADING * u.z_sec[sec] + c_i * rng.standard_normal((s, m))
    if mean_reversion > 0:
        # AR(5) reversal of the last minutes, per session; (1 + kappa) restores the long-run variance.
        z = _lfilter(np.r_[1.0, mean_reversion * REVERSAL_WEIGHTS], z, 1) * (1 + mean_reversion)

    h = np.sqrt(0.5) * u.h_mkt + np.sqrt(0.5) * _ar1(rng.standard_normal(s), DAILY_VOL_PHI)
    x = _ar1(rng.standard_normal((s, m)), INTRADAY_VOL_PHI, axis=1)
    var_corr = DAILY_VOL_LOAD**2 + INTRADAY_VOL_LOAD**2
    v = np.exp(DAILY_VOL_LOAD * h[:, None] + INTRADAY_VOL_LOAD * x - var_corr)
    event = u.event_day[i]
    v = v * np.where(event, EARNINGS_VOL, 1.0)[:, None]

    sigma_min = u.daily_vol[i] * np.sqrt((1 - OVERNIGHT_SHARE) / FULL_SESSION_MINUTES)
    sigma = sigma_min * np.sqrt(u.activity) * v
    if regime_reversion > 0:
        z = _regime_filter(z, np.where(sigma > REGIME_SIGMA, regime_reversion, -regime_reversion))
    drift = trend * u.daily_vol[i] * _ar1(rng.standard_normal(s), TREND_PHI) if trend > 0 else np.zeros(s)
    r = np.where(u.valid, sigma * z + (drift / u.n_min)[:, None], 0.0)

    on_sd = u.daily_vol[i] * np.sqrt(OVERNIGHT_SHARE) * np.exp(DAILY_VOL_LOAD * h - var_corr / 2)
    gap = on_sd * (a_m * u.g_mkt + SECTOR_LOADING * u.g_sec[sec] + c_i * rng.standard_normal(s))
    gap += u.daily_vol[i] * u.event_gap[i]
    gap[0] = 0.0  # the first session opens at the initial price
    intraday = np.cumsum(r, axis=1)
    prev_day = np.r_[0.0, intraday[:-1, -1]]
    log_open = np.log(u.price0[i]) + np.cumsum(gap + prev_day)
    end = log_open[:, None] + intraday
    start = end - r

    # Activity rises with volatility (E[v] = exp(-var_corr / 2)) and more on earnings days.
    boost = np.exp(var_corr / 2) * np.where(event, EARNINGS_ACTIVITY / EARNINGS_VOL, 1.0)[:, None]
    lam = trades_per_minute * u.liquidity[i] * u.activity * v * boost
    spread = u.spread_bps[i] * u.spread_shape * np.sqrt(v)
    start_ns = u.open_ns[:, None] + np.arange(m, dtype=np.int64)[None, :] * NS_PER_MINUTE
    k = u.valid
    return _Minutes(start_ns[k], start[k], end[k], sigma[k], lam[k], spread[k])


def _ticks(
    rng: np.random.Generator, mins: _Minutes, mean_size: float, depth_lots: float, quotes_per_trade: float
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Quote/trade events inside each minute on a Brownian bridge between the minute's end points."""
    counts = rng.poisson(mins.lam * (1 + quotes_per_trade))
    k_of = np.repeat(np.arange(counts.size), counts)
    n = k_of.size
    # Sorted uniform event times without sorting: c exponential spacings plus one closing spacing per
    # minute, normalised by their sum, are the order statistics of c uniforms.
    spacing = rng.standard_exponential(n + counts.size)
    seg_end = np.cumsum(counts + 1) - 1
    cum = np.cumsum(spacing)
    base = np.r_[0.0, cum[seg_end[:-1]]]
    total = cum[seg_end] - base
    is_event = np.ones(n + counts.size, dtype=bool)
    is_event[seg_end] = False
    inv_total = (1.0 / total)[k_of]
    u = (cum[is_event] - base[k_of]) * inv_total
    dt = spacing[is_event] * inv_total

    # Brownian bridge: W at the event times, then W(1) from the closing spacing; B(u) = W(u) - u W(1).
    w = np.cumsum(mins.sigma[k_of] * np.sqrt(dt) * rng.standard_normal(n))
    w_before = np.r_[0.0, w][np.cumsum(counts) - counts]  # W before each minute's first event
    w -= w_before[k_of]
    w_end = np.r_[0.0, w][np.cumsum(counts)] * (counts > 0)  # W at each minute's last event (0 if none)
    w_end += mins.sigma * np.sqrt(spacing[seg_end] / total) * rng.standard_normal(counts.size)
    a = mins.a[k_of]
    mid = np.exp(a + u * (mins.b[k_of] - a) + w - u * w_end[k_of])

    # Quote in cents: spread/2 +-20% around the mid, bid rounded down and ask up (at least one cent apart).
    mid_c = mid * 100
    half = mid_c * mins.spread_bps[k_of] * (0.4e-4 + 0.2e-4 * rng.random(n))
    bid_c = np.floor(mid_c - half)
    ask_c = np.maximum(np.ceil(mid_c + half), bid_c + 1)
    ts = mins.start_ns[k_of] + (u * NS_PER_MINUTE).astype(np.int64)
    depth = 100.0 * depth_lots
    quotes = {
        "ts": ts, "bid": bid_c / 100, "ask": ask_c / 100,
        "bid_size": 100.0 + np.round(depth * rng.standard_exponential(n), -2),
        "ask_size": 100.0 + np.round(depth * rng.standard_exponential(n), -2),
    }

    is_trade = rng.random(n) < 1 / (1 + quotes_per_trade)
    nt = int(is_trade.sum())
    bt, at = bid_c[is_trade], ask_c[is_trade]
    side = rng.random(nt)  # < 0.5: buy at the ask; >= 0.95: inside the spread when it is wider than a cent
    inside = (side >= 0.95) & (at - bt > 1)
    price_c = np.where(inside, np.clip(np.round(mid_c[is_trade]), bt, at), np.where(side < 0.5, at, bt))
    raw = np.exp(rng.normal(np.log(mean_size) - 0.5, 1.0, nt))  # lognormal with mean `mean_size`
    size = np.where(raw >= 50, np.maximum(np.round(raw, -2), 100), np.ceil(raw))
    trades = {"ts": ts[is_trade], "price": price_c / 100, "size": size}
    return trades, quotes


def _minute_bars(rng: np.random.Generator, mins: _Minutes, mean_size: float) -> dict[str, np.ndarray]:
    """1-minute bars drawn directly from the minute model (no ticks): exact bridge extremes for high/low."""
    n = rng.poisson(mins.lam)
    keep = n > 0
    a, b, s2, n = mins.a[keep], mins.b[keep], mins.sigma[keep] ** 2, n[keep]
    d2 = (b - a) ** 2
    hi = 0.5 * (a + b + np.sqrt(d2 - 2 * s2 * np.log(1 - rng.random(a.size))))
    lo = 0.5 * (a + b - np.sqrt(d2 - 2 * s2 * np.log(1 - rng.random(a.size))))
    single = n == 1  # one trade: open = high = low = close
    close = np.round(np.exp(b) * 100)
    open_ = np.where(single, close, np.round(np.exp(a) * 100))
    high = np.where(single, close, np.maximum(np.round(np.exp(hi) * 100), np.maximum(open_, close)))
    low = np.where(single, close, np.minimum(np.round(np.exp(lo) * 100), np.minimum(open_, close)))
    sd = 1.0 / np.sqrt(n)
    volume = np.maximum(np.round(n * mean_size * np.exp(rng.normal(-0.5 * sd * sd, sd))), n)
    vwap = np.round((open_ + high + low + close) / 4) / 100
    return {
        "ts": mins.start_ns[keep], "open": open_ / 100, "high": high / 100, "low": low / 100,
        "close": close / 100, "volume": volume.astype(np.float64), "vwap": vwap, "trades": n.astype(np.int64),
    }


def _earnings(
    rng: np.random.Generator, names: list[str], sessions: list[date], price0: np.ndarray
) -> tuple[pl.DataFrame, dict[tuple[str, date], float]]:
    """Quarterly report dates (season start + a per-symbol offset), bmo/amc, estimates and surprises."""
    first, last = sessions[0] - timedelta(days=95), sessions[-1] + timedelta(days=95)
    rows, surprise = [], {}
    for i, sym in enumerate(names):
        offset = int(rng.integers(5, 35))
        hour = "bmo" if rng.random() < 0.5 else "amc"
        eps = price0[i] * np.exp(rng.normal(np.log(0.05), 0.4)) / 4
        for year in range(first.year, last.year + 1):
            for month in (1, 4, 7, 10):
                d = date(year, month, 10) + timedelta(days=offset + int(rng.integers(-3, 4)))
                d = d if calendar.is_session(d) else calendar.next_session(d)
                z = float(rng.standard_normal())
                est = round(float(eps * np.exp(rng.normal(0, 0.1))), 2)
                if not first <= d <= last:
                    continue
                actual = round(est + abs(est) * 0.08 * z, 2) if d <= sessions[-1] else None
                rows.append((sym, d, hour, est, actual))
                surprise[(sym, d)] = z
    return pl.DataFrame(rows, schema=EARNINGS_SCHEMA, orient="row"), surprise


def frame_from_columns(
    names: list[str], parts: list[dict[str, np.ndarray]], schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """One frame from per-symbol column arrays, without copying them (one chunk per symbol)."""
    if not parts:
        return pl.DataFrame(schema=schema)
    frames = [
        pl.DataFrame(
            [pl.repeat(sym, part["ts"].size, dtype=pl.String, eager=True).alias("symbol")]
            + [pl.Series(name, part[name], dtype=dtype) for name, dtype in schema.items() if name != "symbol"]
        )
        for sym, part in zip(names, parts, strict=True)
    ]
    return pl.concat(frames, rechunk=False)


def daily_bars_from_minutes(bars_1m: pl.DataFrame) -> pl.DataFrame:
    """Daily bars from 1-minute bars, labelled at midnight New York of the session (as Alpaca does)."""
    day = pl.col("ts").dt.convert_time_zone(calendar.NEW_YORK.key).dt.date()
    return (
        bars_1m.group_by("symbol", day.alias("day"), maintain_order=True)
        .agg(rollup())
        .with_columns(
            pl.col("day")
            .cast(pl.Datetime("ns"))
            .dt.replace_time_zone(calendar.NEW_YORK.key)
            .dt.convert_time_zone("UTC")
            .alias("ts")
        )
        .select(pl.col(k).cast(t) for k, t in BAR_SCHEMA.items())
    )


def _check(name: str, value: float, ok: bool, allowed: str) -> None:
    if not ok:
        raise DataError(f"{name} must be {allowed}, got {value!r}")


def generate_market(
    symbols: int | Sequence[str] = 10,
    sessions: int = 5,
    start: str | date = "2024-01-02",
    seed: int = 0,
    ticks: bool = True,
    trades_per_minute: float = 20.0,
    mean_reversion: float = 0.0,
    trend: float = 0.0,
    quotes_per_trade: float = 1.0,
    regime_reversion: float = 0.0,
    progress: Callable[[str], None] | None = None,
) -> SyntheticMarket:
    """Generate a deterministic synthetic market (same arguments and seed -> identical frames).

    symbols: a count (names SAAA, SAAB, ...) or explicit names. sessions: number of NYSE sessions from
    `start` (the first session on or after it). trades_per_minute: average trades per symbol-minute over the
    universe (symbols differ by a lognormal liquidity factor; activity is U-shaped in the day and rises with
    volatility). quotes_per_trade: quote-only updates per trade (ticks mode). mean_reversion in [0, 1) and
    trend >= 0, regime_reversion in [0, 1): the planted predictable components described in the module
    docstring (0 = pure noise).
    ticks=False: only bars, drawn from the same minute model (trades/quotes are empty frames).
    progress: called with each symbol's name when it is done.
    """
    if isinstance(symbols, str):
        symbols = [symbols]
    names = symbol_names(symbols) if isinstance(symbols, int) else [str(s) for s in symbols]
    if not names or len(set(names)) != len(names) or not all(names):
        raise DataError(f"symbols must be distinct non-empty names, got {symbols!r}")
    _check("sessions", sessions, isinstance(sessions, int) and sessions > 0, "a positive integer")
    _check("trades_per_minute", trades_per_minute, 0 < trades_per_minute < 1e5, "in (0, 1e5)")
    _check("mean_reversion", mean_reversion, 0 <= mean_reversion < 1, "in [0, 1)")
    _check("trend", trend, 0 <= trend <= 10, "in [0, 10]")
    _check("regime_reversion", regime_reversion, 0 <= regime_reversion < 1, "in [0, 1)")
    _check("quotes_per_trade", quotes_per_trade, 0 <= quotes_per_trade <= 100, "in [0, 100]")
    try:
        start_date = date.fromisoformat(start) if isinstance(start, str) else start
    except ValueError:
        raise DataError(f"start must be an ISO date (YYYY-MM-DD), got {start!r}") from None
    dates = _session_dates(start_date, sessions)

    root, *streams = np.random.SeedSequence(seed).spawn(1 + 2 * len(names))
    rng = np.random.default_rng(root)
    price0 = np.exp(rng.uniform(np.log(20.0), np.log(500.0), len(names)))
    earnings, surprise = _earnings(rng, names, dates, price0)
    u = _universe(rng, names, dates, price0, earnings, surprise)

    trade_parts, quote_parts, bar_parts = [], [], []
    for i, sym in enumerate(names):
        model_rng = np.random.default_rng(streams[2 * i])
        detail_rng = np.random.default_rng(streams[2 * i + 1])
        mins = _symbol_minutes(model_rng, u, i, trades_per_minute, mean_reversion, trend, regime_reversion)
        if ticks:
            t, q = _ticks(detail_rng, mins, u.mean_size[i], u.depth_lots[i], quotes_per_trade)
            trade_parts.append(t)
            quote_parts.append(q)
        else:
            bar_parts.append(_minute_bars(detail_rng, mins, u.mean_size[i]))
        if progress is not None:
            progress(sym)

    trades = frame_from_columns(names, trade_parts, TRADE_SCHEMA)
    quotes = frame_from_columns(names, quote_parts, QUOTE_SCHEMA)
    if ticks:
        bars_1m = aggregate_trades(trades, every="1m")
    else:
        bars_1m = frame_from_columns(names, bar_parts, BAR_SCHEMA)
    bars_1d = daily_bars_from_minutes(bars_1m)
    adv = bars_1d.group_by("symbol").agg(pl.col("volume").mean().alias("adv"))
    info = pl.DataFrame(
        {
            "symbol": names,
            "sector": [SECTORS[k] for k in u.sector],
            "shortable": rng.random(len(names)) < 0.95,
            "daily_vol": u.daily_vol,
            "beta": u.load_mkt * u.daily_vol / MARKET_DAILY_VOL,
        }
    )
    etb = rng.random(len(names)) < 0.85
    info = info.with_columns((pl.col("shortable") & pl.Series(etb)).alias("easy_to_borrow"))
    symbols_df = info.join(adv, on="symbol", how="left", maintain_order="left").select(
        pl.col(k).cast(t) for k, t in SYMBOLS_SCHEMA.items()
    )
    params = {
        "symbols": names, "sessions": sessions, "start": dates[0].isoformat(), "seed": seed, "ticks": ticks,
        "trades_per_minute": trades_per_minute, "mean_reversion": mean_reversion, "trend": trend,
        "quotes_per_trade": quotes_per_trade, "regime_reversion": regime_reversion,
    }
    return SyntheticMarket(trades, quotes, bars_1m, bars_1d, symbols_df, earnings, params)
