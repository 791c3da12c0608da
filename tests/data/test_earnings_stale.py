"""The earnings calendar expiring while a session trades on it, against the venue's Finnhub-compatible
calendar: refreshed when the calendar answers; when it fails (the venue answering 5xx), the dates fetched
before are used (stale) with one alert, a new try is made at most every `retry_s`, and a success ends the
episode (the next failure alerts again). A symbol never fetched is blacked out while the calendar fails."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hybridtrader.config import VenueConfig, config_from_dict
from hybridtrader.data.earnings_cache import EarningsBlackout
from hybridtrader.data.ttl_cache import CacheRefreshError
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.market.synth import generate_market
from hybridtrader.metrics import Metrics
from hybridtrader.venue import ReplayMarket, Venue

TTL = 60.0
CFG = config_from_dict(
    {
        "execution": {"backoff": {"max_retries": 0}},  # a refresh is one request
        "data": {"earnings_ttl_s": TTL},
    }
)
WINDOW = (date(2023, 12, 1), date(2024, 3, 1))


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def market() -> ReplayMarket:
    return ReplayMarket.from_synthetic(generate_market(symbols=4, sessions=3, start="2024-01-02", seed=9))


def _calendar(venue: Venue, tmp_path: Path, clock: Clock, told: list[str], metrics: Metrics):
    return EarningsBlackout(
        CFG,
        finnhub_url=venue.url + "/api/v1",
        window=WINDOW,
        path=tmp_path / "earnings.json",
        clock=clock,
        metrics=metrics,
        limiter=RateLimiter(CFG, rates=[(100_000, 60.0)]),
        on_stale=told.append,
        retry_s=30.0,
    )


def test_an_expired_calendar_is_refreshed_or_used_stale_with_one_alert(
    market: ReplayMarket, tmp_path: Path
) -> None:
    clock, told, metrics = Clock(), [], Metrics()
    names = market.names
    calls = lambda: metrics.get("api_calls", endpoint="finnhub_earnings")  # noqa: E731
    with Venue(VenueConfig(speed="max"), market=market) as venue:
        cal = _calendar(venue, tmp_path, clock, told, metrics)
        cal.prefetch(names[:3])  # the session's symbols, before the open
        fresh = {s: cal.reports(s) for s in names[:3]}
        assert calls() == 1

        clock.t += TTL + 1  # expired mid-session, and the calendar fails from now
        venue.set_faults(http_5xx_burst=1_000_000)
        assert {s: cal.reports(s) for s in names[:3]} == fresh  # stale, not a crash
        assert calls() == 2  # one failed refresh...
        assert len(told) == 1 and "stale" in told[0] and "fetched 61 s ago" in told[0]
        clock.t += 10
        assert {s: cal.reports(s) for s in names[:3]} == fresh
        assert calls() == 2 and len(told) == 1  # ...no new try within retry_s, no second alert
        # a symbol never fetched has no dates to fall back on: blacked out, and not an error
        assert cal.is_blacked_out(names[3], date(2024, 1, 3))
        with pytest.raises(CacheRefreshError):
            cal.reports(names[3])

        clock.t += 30  # retry_s passed: tried again (still failing)
        assert cal.reports(names[0]) == fresh[names[0]]
        assert calls() == 3 and len(told) == 1

        venue.clear_faults()
        clock.t += 30
        assert cal.reports(names[0]) == fresh[names[0]]  # refreshed: the episode ends
        assert calls() == 4
        assert cal.cache.fresh(names[0])

        clock.t += TTL + 1
        venue.set_faults(http_5xx_burst=1_000_000)
        cal.reports(names[0])
        assert len(told) == 2  # a new failure after a success alerts again


def test_a_failed_prefetch_is_not_retried_by_every_question(market: ReplayMarket, tmp_path: Path) -> None:
    clock, told, metrics = Clock(), [], Metrics()
    with Venue(VenueConfig(speed="max"), market=market) as venue:
        cal = _calendar(venue, tmp_path, clock, told, metrics)
        venue.set_faults(http_5xx_burst=1_000_000)
        with pytest.raises(CacheRefreshError):
            cal.prefetch(market.names)
        tried = metrics.get("api_calls", endpoint="finnhub_earnings")
        assert all(cal.is_blacked_out(s, date(2024, 1, 3)) for s in market.names)  # fail closed
        assert metrics.get("api_calls", endpoint="finnhub_earnings") == tried  # within retry_s: no call
