"""Fixtures for the venue and data-layer tests: a small market and a venue serving it on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest
from hybridtrader.config import VenueConfig
from hybridtrader.market.synth import generate_market
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, ReplayMarket, Venue


def small_market(symbols: int = 3, sessions: int = 2, start: str = "2024-01-02", seed: int = 0,
                 trades_per_minute: float = 20.0) -> ReplayMarket:
    """The synthetic market (names S00, S01...) with reference data fixed for the tests: S01 is not
    shortable, only S00 is easy to borrow; S00 reports before the open of the last session, S01 after the
    close of the first. At 20 trades a minute every session minute has a bar."""
    names = [f"S{i:02d}" for i in range(symbols)]
    m = generate_market(symbols=names, sessions=sessions, start=start, seed=seed,
                        trades_per_minute=trades_per_minute)
    days = m.bars_1d["ts"].dt.convert_time_zone("America/New_York").dt.date().unique().sort()
    info = m.symbols.with_columns(shortable=pl.col("symbol") != "S01",
                                  easy_to_borrow=pl.col("symbol") == "S00")
    earnings = pl.DataFrame({"symbol": names[:2], "date": [days[-1], days[0]], "hour": ["bmo", "amc"],
                             "eps_estimate": [1.0, 2.0], "eps_actual": [1.1, 1.9]})
    return ReplayMarket(trades=m.trades, quotes=m.quotes, bars_1m=m.bars_1m, bars_1d=m.bars_1d, symbols=info,
                        earnings=earnings)


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
    with Venue(VenueConfig(speed="max", impact=False, cash=10_000_000), market=market) as v:
        yield v


@pytest.fixture
def auth() -> dict[str, str]:
    return {"APCA-API-KEY-ID": LOCAL_KEY, "APCA-API-SECRET-KEY": LOCAL_SECRET}
