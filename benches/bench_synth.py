"""Synthetic market generation: our realistic generator beside a naive numpy random walk of the same size.

The peer writes the same trades schema over the same session minutes with none of the realism (no factor
model, stochastic volatility, intraday profiles, earnings, quotes or bars), so the gap is what the realism
costs. Ours also writes about two quotes per trade and the 1-minute and daily bars. Quick by default
(~1M trades); `HYBRIDTRADER_BENCH=full` for ~10M trades and the 50 x 60 research bar set.
"""

from __future__ import annotations

import os
from datetime import date

import numpy as np
import polars as pl
import pytest
from hybridtrader.market import calendar
from hybridtrader.market.schema import BAR_SCHEMA, TRADE_SCHEMA
from hybridtrader.market.synth import frame_from_columns, generate_market, symbol_names

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
# symbols x sessions x trades per minute: ~10M (full) or ~1M (quick) trades from 2024-01-02
TICKS = (50, 5, 90.0) if FULL else (10, 5, 58.0)
BARS = (50, 60) if FULL else (20, 20)


def _minutes(n_sessions: int) -> np.ndarray:
    days = [date(2024, 1, 2)]
    while len(days) < n_sessions:
        days.append(calendar.next_session(days[-1]))
    return calendar.session_minutes_ns(days[0], days[-1])


def naive_trades(n_symbols: int, n_sessions: int, n_trades: int, seed: int = 0) -> pl.DataFrame:
    """Uniform times over the session minutes, a Gaussian random walk price, lognormal sizes."""
    rng = np.random.default_rng(seed)
    minutes = _minutes(n_sessions)
    per = n_trades // n_symbols
    parts = []
    for _ in range(n_symbols):
        ts = np.sort(rng.choice(minutes, per) + rng.integers(0, 60_000_000_000, per))
        cols = {
            "ts": ts,
            "price": np.round(100 * np.exp(np.cumsum(rng.normal(0, 2e-4, per))), 2),
            "size": np.round(np.exp(rng.normal(4.5, 1.0, per))),
        }
        parts.append(cols)
    return frame_from_columns(symbol_names(n_symbols), parts, TRADE_SCHEMA)


def naive_bars(n_symbols: int, n_sessions: int, seed: int = 0) -> pl.DataFrame:
    """A Gaussian random walk per minute with OHLC around it: no profiles, factors or volatility model."""
    rng = np.random.default_rng(seed)
    minutes = _minutes(n_sessions)
    n = minutes.size
    parts = []
    for _ in range(n_symbols):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        open_ = np.r_[100.0, close[:-1]]
        trades = rng.poisson(20, n)
        cols = {
            "ts": minutes, "open": open_, "close": close,
            "high": np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 3e-4, n))),
            "low": np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 3e-4, n))),
            "volume": trades * 150.0, "vwap": (open_ + close) / 2, "trades": trades,
        }  # fmt: skip
        parts.append(cols)
    return frame_from_columns(symbol_names(n_symbols), parts, BAR_SCHEMA)


def _report(benchmark, trades: int) -> None:
    benchmark.extra_info["trades"] = trades
    benchmark.extra_info["Mtrades_per_s"] = round(trades / benchmark.stats.stats.mean / 1e6, 3)


@pytest.mark.benchmark(group="synth-ticks")
def test_ours_trades_quotes_bars(benchmark) -> None:
    symbols, sessions, tpm = TICKS
    market = benchmark(generate_market, symbols, sessions, trades_per_minute=tpm)
    assert market.trades.height > (9e6 if FULL else 9e5)
    _report(benchmark, market.trades.height)
    benchmark.extra_info["quotes"] = market.quotes.height


@pytest.mark.benchmark(group="synth-ticks")
def test_peer_naive_random_walk(benchmark) -> None:
    symbols, sessions, tpm = TICKS
    n = generate_market(symbols, sessions, trades_per_minute=tpm, ticks=False).bars_1m["trades"].sum()
    trades = benchmark(naive_trades, symbols, sessions, int(n))
    _report(benchmark, trades.height)


@pytest.mark.benchmark(group="synth-bars")
def test_ours_research_bars(benchmark) -> None:
    symbols, sessions = BARS
    market = benchmark(generate_market, symbols, sessions, ticks=False)
    benchmark.extra_info["bars_1m"] = market.bars_1m.height


@pytest.mark.benchmark(group="synth-bars")
def test_peer_naive_bars(benchmark) -> None:
    symbols, sessions = BARS
    bars = benchmark(naive_bars, symbols, sessions)
    benchmark.extra_info["bars_1m"] = bars.height
