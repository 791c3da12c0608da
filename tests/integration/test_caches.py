"""TTL caches (shortability from the trading API, earnings blackout from Finnhub) against the venue."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest
from hybridtrader.config import config_from_dict
from hybridtrader.data.atomic import StateFileError
from hybridtrader.data.earnings_cache import EarningsBlackout, event_session
from hybridtrader.data.shortability_cache import ShortabilityCache
from hybridtrader.data.ttl_cache import CacheRefreshError
from hybridtrader.metrics import Metrics
from hybridtrader.venue import ReplayMarket, Venue


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


BACKOFF = {"base_seconds": 0.01, "cap_seconds": 0.02, "max_retries": 1}
CFG = config_from_dict({"execution": {"max_api_calls_per_minute": 100_000, "backoff": BACKOFF},
                        "data": {"shortability_ttl_s": 60, "earnings_ttl_s": 60}})


def test_shortability_ttl_refresh_and_persistence(venue: Venue, market: ReplayMarket, tmp_path: Path) -> None:
    clock, metrics, path = Clock(), Metrics(), tmp_path / "short.json"
    cache = ShortabilityCache(CFG, trading_url=venue.url, path=path, clock=clock, metrics=metrics)
    got = cache.get_many(["S00", "S01", "S02"])
    ref = {r["symbol"]: (r["shortable"], r["easy_to_borrow"]) for r in market.symbols.iter_rows(named=True)}
    assert {k: (v.shortable, v.easy_to_borrow) for k, v in got.items()} == ref
    assert not cache.is_shortable("S01") and cache.is_shortable("S02")
    assert not cache.is_shortable("S02", require_easy_to_borrow=True)
    assert metrics.get("api_calls", endpoint="assets") == 1 and metrics.get("cache_misses") == 3
    clock.t += 59
    cache.get("S00")
    assert metrics.get("api_calls", endpoint="assets") == 1 and metrics.get("cache_hits") == 4
    # a new process reads the persisted entries with their stamps
    again = ShortabilityCache(CFG, trading_url=venue.url, path=path, clock=clock, metrics=metrics)
    again.get("S01")
    assert metrics.get("api_calls", endpoint="assets") == 1
    clock.t += 2  # past the TTL: never served stale; a failed refresh says so
    venue.set_faults(http_5xx_burst=10)
    with pytest.raises(CacheRefreshError, match="S00"):
        again.get("S00")
    assert metrics.get("cache_refresh_failures") == 1
    venue.clear_faults()
    assert again.get("S00").shortable
    assert metrics.get("api_calls", endpoint="assets") >= 2


def test_unknown_symbol_and_corrupt_file(venue: Venue, tmp_path: Path) -> None:
    cache = ShortabilityCache(CFG, trading_url=venue.url, path=tmp_path / "s.json", metrics=Metrics())
    with pytest.raises(CacheRefreshError, match="ZZZ"):
        cache.get("ZZZ")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StateFileError, match="corrupt"):
        ShortabilityCache(CFG, trading_url=venue.url, path=tmp_path / "bad.json")


def test_event_session_is_timing_aware() -> None:
    assert event_session(date(2024, 1, 3), "bmo") == date(2024, 1, 3)
    assert event_session(date(2024, 1, 3), "amc") == date(2024, 1, 4)
    assert event_session(date(2024, 1, 5), "amc") == date(2024, 1, 8)  # Friday after close -> Monday
    assert event_session(date(2024, 1, 6), "") == date(2024, 1, 8)


def test_earnings_blackout(venue: Venue, tmp_path: Path) -> None:
    cfg = CFG.model_copy(update={"data": CFG.data.model_copy(update={"blackout_sessions_before": 1,
                                                                      "blackout_sessions_after": 1})})
    metrics = Metrics()
    e = EarningsBlackout(cfg, finnhub_url=venue.url + "/api/v1", window=(date(2023, 12, 1), date(2024, 2, 1)),
                         path=tmp_path / "earn.json", metrics=metrics)
    assert e.enabled
    # the test market: S00 reports 2024-01-03 before the open, S01 2024-01-02 after the close
    assert e.reports("S00") == [(date(2024, 1, 3), "bmo")]
    assert e.blackout_ranges("S00") == [(date(2024, 1, 2), date(2024, 1, 4))]
    assert e.blackout_ranges("S01") == [(date(2024, 1, 2), date(2024, 1, 4))]  # event session Jan 3
    assert e.is_blacked_out("S00", date(2024, 1, 4)) and not e.is_blacked_out("S00", date(2024, 1, 5))
    assert e.blackout_ranges("S02") == []
    assert metrics.get("api_calls", endpoint="finnhub_earnings") == 3  # one load per symbol asked
    e.cache.clock = lambda: 10**12  # everything expired: one request reloads all of them
    e.prefetch(["S00", "S01", "S02"])
    assert metrics.get("api_calls", endpoint="finnhub_earnings") == 4


def test_no_finnhub_key_disables_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINNHUB_API_KEY", raising=False)
    cfg = config_from_dict({"finnhub": {"url": "https://finnhub.io/api/v1"}})
    with caplog.at_level(logging.WARNING):
        e = EarningsBlackout(cfg, path=tmp_path / "e.json")
    assert not e.enabled and "FINNHUB_API_KEY" in caplog.text
    assert not e.is_blacked_out("AAPL", date(2024, 1, 3))


def test_metrics_since_is_the_work_done_after_a_snapshot() -> None:
    m = Metrics()
    m.inc("api_calls", 7, endpoint="bars")
    m.inc("cache_hits")
    before = m.snapshot()
    m.inc("api_calls", endpoint="bars")
    m.inc("api_calls", endpoint="assets")
    assert m.since(before) == {"api_calls{endpoint=assets}": 1.0, "api_calls{endpoint=bars}": 1.0}
    assert m.since(m.snapshot()) == {}
    assert m.since({}) == m.snapshot()
