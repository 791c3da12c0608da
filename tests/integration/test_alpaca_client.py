"""AlpacaClient against the venue over loopback: chunked paging, the rate limiter, faults and partial
recovery, runaway pagination, and a killed `data fetch` resumed bar-for-bar."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from hybridtrader.config import Config, VenueConfig, config_from_dict
from hybridtrader.data.alpaca_client import AlpacaClient, FetchError, PaginationError
from hybridtrader.data.bar_store import BarStore
from hybridtrader.market.schema import BAR_SCHEMA
from hybridtrader.market.timeframe import Timeframe
from hybridtrader.metrics import Metrics
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, ReplayMarket, Venue

START, END = "2024-01-02", "2024-01-04"


def _config(**data: object) -> Config:
    raw = {"execution": {"max_api_calls_per_minute": 100_000,
                         "backoff": {"base_seconds": 0.01, "cap_seconds": 0.05, "max_retries": 3}},
           "data": {"page_limit": 500, "chunk_bars": 3000}}
    for k, v in data.items():
        raw.setdefault(k, {}).update(v)  # type: ignore[union-attr]
    return config_from_dict(raw)


def _reference(market: ReplayMarket, symbols: list[str]) -> pl.DataFrame:
    bars = market.bars(Timeframe(1, "Min")).frame.filter(pl.col("symbol").is_in(symbols))
    return bars.cast(BAR_SCHEMA).sort("symbol", "ts")  # type: ignore[arg-type]


def test_get_bars_pages_chunks_and_matches_alpaca_py(venue: Venue, market: ReplayMarket) -> None:
    metrics = Metrics()
    client = AlpacaClient(_config(), data_url=venue.url, metrics=metrics)
    got = client.get_bars(["S02", "S00"], "1Min", START, END)
    ref = _reference(market, ["S00", "S02"])
    assert got.equals(ref)
    assert metrics.get("api_calls") >= ref.height / 500  # every page was a call
    raw = StockHistoricalDataClient(LOCAL_KEY, LOCAL_SECRET, url_override=venue.url).get_stock_bars(
        StockBarsRequest(symbol_or_symbols=["S00", "S02"], timeframe=TimeFrame.Minute,
                         start=datetime(2024, 1, 2, tzinfo=UTC), end=datetime(2024, 1, 4, tzinfo=UTC)))
    assert got.filter(pl.col("symbol") == "S00")["close"].to_list() == [b.close for b in raw.data["S00"]]
    daily = client.get_bars("S01", TimeFrame.Day, START, END)
    assert daily["ts"].to_list() == [datetime(2024, 1, 2, 5, tzinfo=UTC), datetime(2024, 1, 3, 5, tzinfo=UTC)]


@pytest.mark.parametrize("fault", [{"http_429_burst": 2, "http_429_reset_s": 0.01},
                                   {"http_5xx_burst": 2}, {"http_drop_burst": 2}])
def test_recovers_from_storms_errors_and_drops(venue: Venue, market: ReplayMarket,
                                               fault: dict[str, object]) -> None:
    metrics = Metrics()
    client = AlpacaClient(_config(), data_url=venue.url, metrics=metrics)
    venue.set_faults(burst_after=2, **fault)
    got = client.get_bars(["S00", "S01"], "1Min", START, END)
    assert got.equals(_reference(market, ["S00", "S01"]))
    assert metrics.get("retries") == 2 and metrics.get("resumes") == 0
    if "http_429_burst" in fault:
        assert metrics.get("rate_limited") == 2


def test_partial_recovery_resumes_from_the_last_bar(venue: Venue, market: ReplayMarket) -> None:
    metrics = Metrics()
    cfg = _config(execution={"backoff": {"base_seconds": 0.01, "cap_seconds": 0.01, "max_retries": 1}},
                  data={"chunk_bars": 100_000, "max_resumes": 2})
    client = AlpacaClient(cfg, data_url=venue.url, metrics=metrics)
    venue.set_faults(burst_after=3, http_5xx_burst=2)  # page 4 fails twice: past the limiter's one retry
    got = client.get_bars(["S00", "S01", "S02"], "1Min", START, END)
    assert got.equals(_reference(market, ["S00", "S01", "S02"]))
    assert metrics.get("resumes") == 1


def test_gives_up_with_the_bars_fetched_so_far(venue: Venue, market: ReplayMarket) -> None:
    cfg = _config(execution={"backoff": {"base_seconds": 0.01, "cap_seconds": 0.01, "max_retries": 1}},
                  data={"chunk_bars": 100_000, "max_resumes": 1})
    client = AlpacaClient(cfg, data_url=venue.url, metrics=Metrics())
    venue.set_faults(burst_after=3, http_5xx_burst=100)
    with pytest.raises(FetchError) as e:
        client.get_bars(["S00", "S01", "S02"], "1Min", START, END)
    assert e.value.partial.equals(_reference(market, ["S00", "S01", "S02"]).head(3 * 500))


def test_runaway_pagination_stops(venue: Venue) -> None:
    client = AlpacaClient(_config(), data_url=venue.url, metrics=Metrics())
    venue.set_faults(loop_page_token=True)
    with pytest.raises(PaginationError, match="repeated"):
        client.get_bars("S00", "1Min", START, END)
    venue.clear_faults()
    capped = AlpacaClient(_config(data={"max_pages": 2, "chunk_bars": 100_000, "page_limit": 100}),
                          data_url=venue.url,
                          metrics=Metrics())
    with pytest.raises(PaginationError, match="max_pages=2"):
        capped.get_bars("S00", "1Min", START, END)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="data_url"):
        AlpacaClient(Config())
    client = AlpacaClient(_config(), data_url="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="timeframe"):
        client.get_bars("S00", "2Day", START, END)
    with pytest.raises(ValueError, match="end"):
        client.get_bars("S00", "1Min", END, START)
    with pytest.raises(ValueError, match="symbols"):
        client.get_bars(["S00", ""], "1Min", START, END)


def _fetch_cmd(cfg: Path, store: Path) -> list[str]:
    main = "import sys; from hybridtrader.cli import main; sys.exit(main())"
    return [sys.executable, "-c", main, "data", "fetch", "--config", str(cfg), "--symbols",
            "S00", "S01", "S02", "--start", START, "--end", END, "--store", str(store), "--no-progress"]


def test_killed_fetch_resumes_to_the_same_store(venue: Venue, tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "alpaca": {"data_url": venue.url, "trading_url": venue.url},
        "finnhub": {"url": venue.url + "/api/v1"},
        "execution": {"max_api_calls_per_minute": 100_000},
        "data": {"page_limit": 200, "chunk_bars": 400},
    }))
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    subprocess.run(_fetch_cmd(cfg, whole), check=True, capture_output=True, timeout=120)

    venue.set_faults(latency_ms=40)  # slow enough to kill in the middle
    proc = subprocess.Popen(_fetch_cmd(cfg, resumed), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    states = resumed / ".fetch-state"
    deadline = time.monotonic() + 60
    while not list(states.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert list(states.glob("*.json")), "the fetch never recorded a finished chunk"
    venue.clear_faults()
    partial = BarStore(resumed).read(None, "1Min").height
    again = subprocess.run(_fetch_cmd(cfg, resumed), check=True, capture_output=True, text=True, timeout=120)
    assert "already done by an earlier run" in again.stdout
    a, b = BarStore(whole).read(None, "1Min"), BarStore(resumed).read(None, "1Min")
    assert 0 < partial < b.height
    assert a.height == 3 * 780 and a.equals(b)
    assert not list(states.glob("*.json"))  # done: no state left behind


def test_get_trades_and_quotes_page_and_match_the_tape(venue: Venue, market: ReplayMarket) -> None:
    client = AlpacaClient(_config(data={"page_limit": 700}), data_url=venue.url, metrics=Metrics())
    lo, hi = datetime(2024, 1, 2, 15, tzinfo=UTC), datetime(2024, 1, 3, 16, tzinfo=UTC)
    for got, tape in ((client.get_trades(["S02", "S00"], lo, hi), market.trades.frame),
                      (client.get_quotes("S00,S01", lo, hi), market.quotes.frame)):
        wanted = got["symbol"].unique().to_list()
        ref = tape.filter(pl.col("symbol").is_in(wanted), pl.col("ts").is_between(lo, hi))
        assert got.height > 3 * 700 and got["symbol"].n_unique() == 2
        assert got.equals(ref.select(got.columns).sort("symbol", "ts", maintain_order=True))


def test_tick_pages_resume_without_losing_or_doubling_equal_timestamps(market: ReplayMarket) -> None:
    """Ticks sharing a timestamp across page cuts, pages failing at random: resuming from the last row's
    microsecond and skipping what was already received gives exactly the tape, every time."""
    trades = market.trades.frame.with_columns(pl.col("ts").dt.truncate("5s"))  # runs of ~5 equal stamps
    bursty = ReplayMarket(trades=trades, quotes=market.quotes.frame, symbols=market.symbols)
    cfg = _config(execution={"backoff": {"base_seconds": 0.001, "cap_seconds": 0.001, "max_retries": 0}},
                  data={"page_limit": 7, "max_resumes": 1000, "max_pages": 100_000})
    with Venue(VenueConfig(speed="max", rate_limit_per_minute=10**6,
                           faults={"http_error_rate": 0.2, "seed": 3}), market=bursty) as v:
        metrics = Metrics()
        client = AlpacaClient(cfg, data_url=v.url, metrics=metrics)
        lo, hi = datetime(2024, 1, 2, 14, 30, tzinfo=UTC), datetime(2024, 1, 2, 15, 30, tzinfo=UTC)
        got = client.get_trades(["S00", "S01"], lo, hi)
    ref = bursty.trades.frame.filter(pl.col("symbol").is_in(["S00", "S01"]), pl.col("ts").is_between(lo, hi))
    assert metrics.get("resumes") > 10
    assert got.equals(ref.select(got.columns).sort("symbol", "ts", maintain_order=True))
