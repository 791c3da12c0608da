"""Small synthetic 1-minute bar markets for the ML tests (test-only helper, not part of the package).

The knobs follow the synthetic-market contract (`hybridtrader.market.synth`):
- `mean_reversion` (kappa in [0, 1)): each minute's log return reverses kappa times a weighted sum of the
  last 5 minutes' returns (weights 1/2, 1/4, 1/8, 1/16, 1/16), an AR(5);
- `trend` (t >= 0): a persistent daily drift per symbol, AR(1) with phi 0.9 across sessions and standard
  deviation t x daily volatility, spread evenly over the session's minutes.
At 0 both are absent and every symbol is a pure random walk (with a common market factor).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
from hybridtrader.market.calendar import session_minutes_ns, sessions
from scipy.signal import lfilter

WEIGHTS = np.array([0.5, 0.25, 0.125, 0.0625, 0.0625])


def make_bars(
    n_symbols: int = 8,
    n_sessions: int = 10,
    seed: int = 0,
    mean_reversion: float = 0.0,
    trend: float = 0.0,
    start: date = date(2024, 1, 2),
    vol_bps: float = 8.0,
) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    days = sessions(start, start + timedelta(days=3 * n_sessions + 10))[:n_sessions]
    ts = session_minutes_ns(days[0], days[-1])
    n = len(ts)
    per_day = n // n_sessions
    sigma = vol_bps / 1e4
    market = rng.normal(0.0, 1.0, n)
    frames = []
    for s in range(n_symbols):
        shocks = sigma * (0.4 * market + np.sqrt(1 - 0.16) * rng.normal(0.0, 1.0, n))
        r = lfilter([1.0], np.r_[1.0, mean_reversion * WEIGHTS], shocks) if mean_reversion > 0 else shocks
        if trend > 0:
            daily = lfilter([np.sqrt(1 - 0.81)], [1.0, -0.9], rng.normal(0.0, 1.0, n_sessions))
            r = r + np.repeat(trend * sigma * np.sqrt(per_day) * daily / per_day, per_day)
        close = (50.0 + 10 * s) * np.exp(np.cumsum(r))
        open_ = np.concatenate([[close[0]], close[:-1]])
        wiggle = np.abs(rng.normal(0.0, sigma * 0.3, (2, n)))
        high = np.maximum(open_, close) * (1 + wiggle[0])
        low = np.minimum(open_, close) * (1 - wiggle[1])
        volume = rng.lognormal(7.0, 0.5, n).round()
        frames.append(
            pl.DataFrame(
                {
                    "symbol": f"S{s:02d}",
                    "ts": ts,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                    "vwap": (high + low + close) / 3,
                    "trades": np.maximum(1, volume // 50),
                }
            )
        )
    return pl.concat(frames).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
