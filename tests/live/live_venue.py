"""The local venue's configuration for the live node's tests: its replay clock moved by the test (speed
"max"), no REST history past the clock, no rate limit and no market impact to speak of."""

from __future__ import annotations

from hybridtrader.config import VenueConfig


def live_venue_config(**changes: object) -> VenueConfig:
    return VenueConfig(
        speed="max", history_until_clock=True, rate_limit_per_minute=1_000_000, impact=False, **changes
    )
