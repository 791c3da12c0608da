"""`hybridtrader venue`, `hybridtrader health` and `hybridtrader data fetch` as subprocesses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import requests
import yaml
from hybridtrader.cli import main
from hybridtrader.config import load_config
from hybridtrader.data.shortability_cache import ShortabilityCache
from hybridtrader.metrics import METRICS
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, ReplayMarket, Venue

MAIN = "import sys; from hybridtrader.cli import main; sys.exit(main())"


def test_venue_command_prints_urls_and_serves(market: ReplayMarket, tmp_path: Path) -> None:
    market.trades.frame.write_parquet(tmp_path / "trades.parquet")
    market.quotes.frame.write_parquet(tmp_path / "quotes.parquet")
    proc = subprocess.Popen([sys.executable, "-c", MAIN, "venue", "--port", "0", "--speed", "max",
                             "--market", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        urls = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("serving"):
                break
            name, _, value = line.strip().partition(" ")
            urls[name] = value.strip()
        stream = urls["alpaca_stream"]
        assert stream.startswith("ws://127.0.0.1:") and stream.endswith("/v2/iex")
        r = requests.get(urls["alpaca_data"] + "/v2/stocks/bars", timeout=10,
                         params={"symbols": "S01", "timeframe": "1Day"},
                         headers={"APCA-API-KEY-ID": LOCAL_KEY, "APCA-API-SECRET-KEY": LOCAL_SECRET})
        assert r.status_code == 200 and len(r.json()["bars"]["S01"]) == 2
    finally:
        proc.terminate()
        proc.wait(10)


def test_health_and_fetch_commands(venue: Venue, tmp_path: Path, capsys) -> None:
    METRICS.inc("api_calls", 20, endpoint="bars")  # as if earlier work in this process had fetched
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"),
                                   "alpaca": {"data_url": venue.url, "trading_url": venue.url}}))
    assert main(["data", "fetch", "--config", str(cfg), "--symbols", "S00,S01", "--start", "2024-01-02",
                 "--end", "2024-01-02T23:59:59Z", "--timeframe", "5Min", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "fetched 156 bars (156 new)" in out and "quality: ok" in out
    # This fetch's calls only, whatever the process counted before (other tests ran fetches in it).
    assert re.search(r"^api: api_calls\{endpoint=bars\} 1(,|$)", out, re.M), out
    assert main(["health", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "OK   alpaca_data" in out and "OK   alpaca_trading" in out and "OK   store" in out
    assert "SKIP cache:shortability" in out
    ShortabilityCache(load_config(cfg)).get_many(["S00", "S01"])  # persisted under data_dir/cache
    assert main(["health", "--config", str(cfg)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "cache:shortability" in x)
    assert line.startswith("OK") and "2 entries, 0 expired" in line
    files = sorted((tmp_path / "data" / "bars").glob("timeframe=5Min/symbol=S00/*.parquet"))
    files[0].write_bytes(b"garbage")
    assert main(["health", "--config", str(cfg)]) == 1
    assert "FAIL store" in capsys.readouterr().out
    assert main(["health", "--config", str(cfg), "--url", "http://127.0.0.1:9"]) == 1
    assert main(["data", "fetch", "--config", str(cfg), "--symbols", "S00", "--start", "2024-01-05",
                 "--end", "2024-01-02", "--no-progress"]) == 2  # one-line error, exit 2
    assert "error: --end 2024-01-02 is before --start" in capsys.readouterr().err
