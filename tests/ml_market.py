"""Small synthetic 1-minute bar markets for the ML tests (test-only helper, not part of the package).

Log price = random-walk anchor + deviation. `mean_reversion` in [0, 1) pulls the deviation back each bar
(an AR(1) with coefficient 1 - mean_reversion); 0 makes the deviation a second random walk, i.e. the whole
price is a pure random walk with no predictable structure. `trend` in [0, 1) adds a slowly varying drift
(AR(1), persistence 0.995) whose size relative to the per-bar noise is `trend`.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
from hybridtrader.market.calendar import session_minutes_ns, sessions


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
    sigma = vol_bps / 1e4
    frames = []
    for s in range(n_symbols):
        anchor = np.cumsum(rng.normal(0.0, sigma * 0.5, n))
        shocks = rng.normal(0.0, sigma, n)
        dev = np.empty(n)
        d = 0.0
        phi = 1.0 - mean_reversion
        for i in range(n):
            d = phi * d + shocks[i]
            dev[i] = d
        drift = np.zeros(n)
        if trend > 0:
            eta = rng.normal(0.0, sigma * trend * np.sqrt(1 - 0.995**2), n)
            m = 0.0
            for i in range(n):
                m = 0.995 * m + eta[i]
                drift[i] = m
        logp = np.log(50.0 + 10 * s) + anchor + dev + np.cumsum(drift)
        close = np.exp(logp)
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
