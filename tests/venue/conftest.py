"""Fixtures for the venue and data-layer tests: a small market and a venue serving it on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np
import polars as pl
import pytest
from hybridtrader.config import VenueConfig
from hybridtrader.market import calendar
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, ReplayMarket, Venue

TS = pl.Datetime("ns", "UTC")


def small_market(symbols: int = 3, sessions: int = 2, start: str = "2024-01-02", seed: int = 0,
                 trades_per_minute: int = 4) -> ReplayMarket:
    """Random-walk trades and quotes on regular-session minutes (the synthetic market's schema)."""
    rng = np.random.default_rng(seed)
    first = date.fromisoformat(start)
    days = calendar.sessions(first, date(first.year + 1, 12, 31))[:sessions]
    minutes = calendar.session_minutes_ns(days[0], days[-1])
    names = [f"S{i:02d}" for i in range(symbols)]
    trades, quotes = [], []
    for k, sym in enumerate(names):
        n = minutes.size * trades_per_minute
        ts = np.repeat(minutes, trades_per_minute) + np.tile(
            np.sort(rng.integers(0, 60_000_000_000, trades_per_minute)), minutes.size)
        price = 50.0 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 4e-4, n)))
        size = rng.integers(1, 20, n) * 10
        trades.append(pl.DataFrame({"symbol": sym, "ts": ts, "price": price.round(4), "size": size}))
        half = np.maximum(0.005, price * 1e-4).round(4)
        quotes.append(pl.DataFrame({"symbol": sym, "ts": ts - 1000, "bid": (price - half).round(4),
                                    "ask": (price + half).round(4), "bid_size": rng.integers(1, 10, n) * 100,
                                    "ask_size": rng.integers(1, 10, n) * 100}))
    t = pl.concat(trades).with_columns(pl.col("ts").cast(TS))
    q = pl.concat(quotes).with_columns(pl.col("ts").cast(TS))
    info = pl.DataFrame({"symbol": names, "sector": "Tech", "shortable": [i != 1 for i in range(symbols)],
                         "easy_to_borrow": [i == 0 for i in range(symbols)], "adv": 1e6, "daily_vol": 0.02})
    earnings = pl.DataFrame({"symbol": names[:2], "date": [days[-1], days[0]], "hour": ["bmo", "amc"],
                             "eps_estimate": [1.0, 2.0], "eps_actual": [1.1, 1.9]})
    return ReplayMarket(trades=t, quotes=q, symbols=info, earnings=earnings)


@pytest.fixture(scope="session")
def market() -> ReplayMarket:
    return small_market()


@pytest.fixture(scope="session")
def venue(market: ReplayMarket) -> Iterator[Venue]:
    """Shared by read-only tests (history, streams); faults are cleared after each test."""
    cfg = VenueConfig(speed="max", rate_limit_per_minute=100_000, stream_connections_per_key=100)
    with Venue(cfg, market=market) as v:
        yield v


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "venue" in request.fixturenames:
        request.getfixturevalue("venue").clear_faults()


@pytest.fixture
def fresh_venue(market: ReplayMarket) -> Iterator[Venue]:
    """A venue of its own (broker state, rate-limit budget) for one test; fills at the quote (no impact)."""
    with Venue(VenueConfig(speed="max", impact=False), market=market) as v:
        yield v


@pytest.fixture
def auth() -> dict[str, str]:
    return {"APCA-API-KEY-ID": LOCAL_KEY, "APCA-API-SECRET-KEY": LOCAL_SECRET}
