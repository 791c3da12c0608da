"""Injected REST faults and the Finnhub earnings endpoint, over loopback with real HTTP clients."""

from __future__ import annotations

import time

import pytest
import requests
from hybridtrader.config import FaultConfig, VenueConfig
from hybridtrader.venue import LOCAL_FINNHUB_TOKEN, ReplayMarket, Venue


def test_fault_bursts_then_recovery(venue: Venue, auth: dict[str, str]) -> None:
    venue.set_faults(http_429_burst=2, http_5xx_burst=1, http_5xx_status=503)
    codes = [requests.get(venue.url + "/v2/clock", headers=auth, timeout=5).status_code for _ in range(4)]
    assert codes == [429, 429, 503, 200]


def test_429_storm_carries_rate_limit_headers(venue: Venue, auth: dict[str, str]) -> None:
    venue.set_faults(http_429_burst=1)
    r = requests.get(venue.url + "/v2/stocks/bars", params={"symbols": "S00", "timeframe": "1Day"},
                     headers=auth, timeout=5)
    assert r.status_code == 429 and r.json()["code"] == 42910000
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert int(r.headers["X-RateLimit-Reset"]) >= time.time() - 1


def test_dropped_connection(venue: Venue, auth: dict[str, str]) -> None:
    venue.set_faults(http_drop_burst=1)
    with pytest.raises(requests.ConnectionError):
        requests.get(venue.url + "/v2/clock", headers=auth, timeout=5)
    assert requests.get(venue.url + "/v2/clock", headers=auth, timeout=5).status_code == 200


def test_query_knobs_and_latency(venue: Venue, auth: dict[str, str]) -> None:
    assert requests.get(venue.url + "/v2/clock?fault=5xx", headers=auth, timeout=5).status_code == 500
    assert requests.get(venue.url + "/v2/clock?fault=bogus", headers=auth, timeout=5).status_code == 422
    t0 = time.perf_counter()
    assert requests.get(venue.url + "/v2/clock?latency_ms=150", headers=auth, timeout=5).status_code == 200
    assert time.perf_counter() - t0 >= 0.15


def test_control_endpoint_and_random_errors(venue: Venue, auth: dict[str, str]) -> None:
    r = requests.post(venue.url + "/venue/faults", json={"http_error_rate": 0.5, "seed": 7}, timeout=5)
    assert r.status_code == 200 and r.json()["http_error_rate"] == 0.5
    codes = [requests.get(venue.url + "/v2/clock", headers=auth, timeout=5).status_code for _ in range(60)]
    assert 10 < codes.count(500) < 50 and set(codes) == {200, 500}
    assert requests.post(venue.url + "/venue/faults", json={"latency_ms": -1}, timeout=5).status_code == 422
    requests.delete(venue.url + "/venue/faults", timeout=5)
    assert venue.faults.config == FaultConfig()


def test_faults_from_config(market: ReplayMarket, auth: dict[str, str]) -> None:
    with Venue(VenueConfig(speed="max", faults=FaultConfig(http_5xx_burst=1)), market=market) as v:
        assert requests.get(v.url + "/v2/account", headers=auth, timeout=5).status_code == 500
        assert requests.get(v.url + "/v2/account", headers=auth, timeout=5).status_code == 200


def test_finnhub_earnings(venue: Venue, market: ReplayMarket) -> None:
    url = venue.url + "/api/v1/calendar/earnings"
    r = requests.get(url, params={"from": "2024-01-01", "to": "2024-12-31", "token": LOCAL_FINNHUB_TOKEN},
                     timeout=5)
    assert r.status_code == 200
    rows = r.json()["earningsCalendar"]
    ref = market.earnings.sort("date", descending=True)
    assert [(e["symbol"], e["date"], e["hour"]) for e in rows] == [
        (s, d.isoformat(), h) for s, d, h in ref.select("symbol", "date", "hour").iter_rows()]
    assert set(rows[0]) == {"date", "epsActual", "epsEstimate", "hour", "quarter", "revenueActual",
                            "revenueEstimate", "symbol", "year"}
    one = requests.get(url, params={"symbol": "S01", "token": LOCAL_FINNHUB_TOKEN}, timeout=5).json()
    assert [e["symbol"] for e in one["earningsCalendar"]] == ["S01"]
    assert requests.get(url, params={"from": "2024-01-01"}, timeout=5).status_code == 401
    assert requests.get(url, params={"from": "01/01/2024", "token": LOCAL_FINNHUB_TOKEN},
                        timeout=5).status_code == 422


def test_finnhub_rate_limit(market: ReplayMarket) -> None:
    with Venue(VenueConfig(speed="max", finnhub_rate_limit_per_minute=3), market=market) as v:
        codes = [requests.get(v.url + "/api/v1/calendar/earnings", params={"token": LOCAL_FINNHUB_TOKEN},
                              timeout=5).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
