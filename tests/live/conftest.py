"""Fixtures for the live node's tests: a small synthetic market and a venue serving it on loopback with its
replay clock moved by the test (speed "max") and no REST history past the clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hybridtrader.config import Config, VenueConfig
from hybridtrader.market.synth import generate_market
from hybridtrader.venue import ReplayMarket, Venue


def live_venue_config(**changes: object) -> VenueConfig:
    return VenueConfig(
        speed="max", history_until_clock=True, rate_limit_per_minute=1_000_000, impact=False, **changes
    )


@pytest.fixture(scope="session")
def live_market() -> ReplayMarket:
    names = [f"S{i:02d}" for i in range(3)]
    return ReplayMarket.from_synthetic(generate_market(symbols=names, sessions=1, start="2024-01-02", seed=3))


@pytest.fixture
def live_venue(live_market: ReplayMarket) -> Iterator[Venue]:
    with Venue(live_venue_config(), market=live_market) as v:
        yield v


@pytest.fixture
def fast_retry_config() -> Config:
    """Retries that do not make a test wait: tiny backoff, transient errors retried."""
    cfg = Config()
    cfg.execution.backoff.base_seconds = 0.01
    cfg.execution.backoff.cap_seconds = 0.05
    cfg.execution.backoff.max_retries = 20
    cfg.execution.backoff.retry_transient = True
    return cfg
