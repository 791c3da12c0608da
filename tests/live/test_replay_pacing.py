"""The lockstep feed's pacing: trading time only (the night between two sessions takes no wall time), at a
given speed or spread over what is left until a deadline. The waits the feed asks for are recorded by its
stop event (which returns at once), so nothing here depends on how fast the machine is."""

from __future__ import annotations

import threading
import time

import pytest
from hybridtrader.cli.live_cmd import _sessions_from
from hybridtrader.config import Config, VenueConfig
from hybridtrader.data.alpaca_client import AlpacaClient
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.live.feed import ReplayFeed, VenueClock
from hybridtrader.market.synth import generate_market
from hybridtrader.market.timeconv import NS_PER_MINUTE
from hybridtrader.venue import ReplayMarket, Venue

VENUE = VenueConfig(speed="max", history_until_clock=True, rate_limit_per_minute=1_000_000)
BAR_TIMES = 2 * 390  # two full sessions of 1-minute bar times


class RecordingStop(threading.Event):
    """A stop event that is never set and notes, instead of waiting, when each wait asked of it would
    have ended (time.monotonic())."""

    def __init__(self) -> None:
        super().__init__()
        self.due: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.due.append(time.monotonic() + timeout)
        return False


@pytest.fixture(scope="module")
def two_sessions() -> ReplayMarket:
    market = generate_market(symbols=["P00", "P01"], sessions=2, start="2024-01-04", seed=5)
    return ReplayMarket.from_synthetic(market)


def _feed(venue: Venue, stop: RecordingStop, **pace: float) -> ReplayFeed:
    cfg = Config()
    data = AlpacaClient(cfg, data_url=venue.url, limiter=RateLimiter(cfg, rates=[(1_000_000, 60.0)]))
    days = _sessions_from(venue.clock.now_ns(), 2)
    return ReplayFeed(data, VenueClock(venue.url), venue.market.names, days, stop=stop, **pace)


def test_a_speed_paces_trading_minutes_and_skips_the_night(two_sessions: ReplayMarket) -> None:
    speed = 600.0  # ten market minutes per wall second: one bar time every 0.1 s
    step = NS_PER_MINUTE / 1e9 / speed
    stop = RecordingStop()
    with Venue(VENUE, market=two_sessions) as venue:
        feed = _feed(venue, stop, speed=speed)
        batches = list(feed.batches())
    assert len(batches) == BAR_TIMES and len({b.session for b in batches}) == 2
    # bar time k (k >= 1) is due k steps after the first, the first bar time of the second session one
    # step after the last of the first (the 17.5 hours of market time between them would be 105 s here)
    assert len(stop.due) == BAR_TIMES - 1
    gaps = [b - a for a, b in zip(stop.due, stop.due[1:], strict=False)]
    # (the due times are read a moment apart from the feed's own clock reading: half a step of slack)
    assert gaps == pytest.approx([step] * (BAR_TIMES - 2), abs=step / 2)


def test_a_deadline_spreads_the_bar_times_left_over_the_wall_time_left(two_sessions: ReplayMarket) -> None:
    stop = RecordingStop()
    with Venue(VENUE, market=two_sessions) as venue:
        before = time.monotonic()
        feed = _feed(venue, stop, finish_by=before + 30.0)
        batches = feed.batches()
        next(batches)  # the first bar time sets the speed from what is left of the 30 s
        after = time.monotonic()
        assert feed.speed is not None
        # 780 bar times of 60 market seconds in (at most) the 30 wall seconds left
        assert BAR_TIMES * 60 / 30.0 <= feed.speed <= BAR_TIMES * 60 / (30.0 - (after - before))
        rest = list(batches)
    assert len(rest) == BAR_TIMES - 1
    # evenly spread: the last bar time is due one step before the deadline
    assert stop.due[-1] == pytest.approx(before + 30.0 - 60 / feed.speed, abs=after - before + 0.05)


def test_a_deadline_already_past_leaves_the_replay_unpaced(two_sessions: ReplayMarket) -> None:
    stop = RecordingStop()
    with Venue(VENUE, market=two_sessions) as venue:
        feed = _feed(venue, stop, finish_by=time.monotonic() - 1.0)
        assert sum(1 for _ in feed.batches()) == BAR_TIMES
    assert feed.speed is None and stop.due == []
