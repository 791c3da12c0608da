"""Fixtures for the live node's tests: a small synthetic market, a venue serving it on loopback with its
replay clock moved by the test (speed "max") and no REST history past the clock, and nodes trading a
venue."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hybridtrader.cli.live_cmd import _sessions_from
from hybridtrader.config import Config
from hybridtrader.credentials import alpaca_keys
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.live.journal import Journal
from hybridtrader.live.node import Endpoints, LiveNode
from hybridtrader.market.synth import generate_market
from hybridtrader.venue import ReplayMarket, Venue
from live_venue import live_venue_config


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


@pytest.fixture
def make_node() -> Callable[..., LiveNode]:
    """`make(cfg, venue, journal_path, **options)`: a LiveNode trading `venue` over loopback, its first
    session and every symbol, with a request budget no test reaches; lockstep with the venue's replay
    clock, or in real time (the stream feed) when `options` give a `clock`."""

    def make(cfg: Config, venue: Venue, journal: Path, **options: Any) -> LiveNode:
        base = venue.url
        ws = base.replace("http://", "ws://")
        real_time = "clock" in options
        ep = Endpoints(
            base,
            ws + "/stream",
            base,
            None if real_time else base,
            alpaca_keys(cfg, base),
            data_stream_url=ws if real_time else None,
        )
        return LiveNode(
            cfg,
            ep,
            sessions=_sessions_from(venue.clock.now_ns(), 1),
            symbols=venue.market.names,
            journal=Journal(journal),
            limiter=RateLimiter(cfg, rates=[(1_000_000, 60.0)]),
            **options,
        )

    return make
