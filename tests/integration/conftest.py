"""Fixtures for the over-the-socket tests: a venue serving the shared small market (root conftest) on
loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hybridtrader.config import VenueConfig
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, ReplayMarket, Venue


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
