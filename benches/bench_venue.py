"""Venue and data-client benchmarks (venue in a subprocess, clients here, over loopback).

- fetch: one year (quick: one month) of 1-minute bars for 10 symbols through our `AlpacaClient`
  (chunks, limiter, Polars frame) beside raw alpaca-py fetching the same range (`raw_data=True`: its own
  paging, dicts only) and alpaca-py's default models. Target: ours within 20% of raw alpaca-py.
- bars requests/s the venue serves (limit=1000 pages, 16 in flight) beside a bare aiohttp server
  answering a fixed body of the same size (the framework's ceiling). Target: >= 500/s.
- trades/s streamed to one client (JSON text frames and msgpack frames). Target: >= 100k/s.
Sizes: quick by default, full with HYBRIDTRADER_BENCH=full.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import msgpack
import orjson
import pytest
import websockets
import yaml
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from hybridtrader.config import config_from_dict
from hybridtrader.data.alpaca_client import AlpacaClient
from hybridtrader.market.synth import generate_market
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
SYMBOLS = 10
BAR_SESSIONS = 252 if FULL else 21
TICK_SESSIONS = 3 if FULL else 1
STREAM_TRADES = 1_000_000 if FULL else 150_000
REQUESTS = 3000 if FULL else 400
AUTH = {"APCA-API-KEY-ID": LOCAL_KEY, "APCA-API-SECRET-KEY": LOCAL_SECRET}
_MAIN = "import sys; from hybridtrader.cli import main; sys.exit(main())"


def _serve(argv: list[str]) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-c", _MAIN, *argv], stdout=subprocess.PIPE, text=True)
    urls: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("serving"):
            return proc, urls
        name, _, value = line.strip().partition(" ")
        urls[name] = value.strip()
    raise RuntimeError(f"venue exited before serving: {proc.wait()}")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(20)


@pytest.fixture(scope="module")
def venues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("venue-bench")
    bars = generate_market(symbols=SYMBOLS, sessions=BAR_SESSIONS, ticks=False, seed=1)
    ticks = generate_market(symbols=SYMBOLS, sessions=TICK_SESSIONS, ticks=True, seed=2,
                            trades_per_minute=STREAM_TRADES / (SYMBOLS * 390 * TICK_SESSIONS) * 1.2)
    bars_dir, ticks_dir = root / "bars", root / "ticks"
    bars.write(bars_dir)
    ticks.write(ticks_dir)
    cfg = root / "venue.yaml"
    cfg.write_text(yaml.safe_dump({"venue": {"rate_limit_per_minute": 10**9, "speed": "max",
                                             "stream_connections_per_key": 100}}))
    procs = []
    try:
        p1, u1 = _serve(["venue", "--config", str(cfg), "--market", str(bars_dir)])
        procs.append(p1)
        p2, u2 = _serve(["venue", "--config", str(cfg), "--market", str(ticks_dir)])
        procs.append(p2)
        yield {"bars": u1, "ticks": u2, "n_bars": bars.bars_1m.height, "n_trades": ticks.trades.height,
               "start": bars.bars_1m["ts"].min(), "end": bars.bars_1m["ts"].max(),
               "symbols": bars.symbols["symbol"].to_list(), "root": root}
    finally:
        for p in procs:
            _stop(p)


# ------------------------------------------------------------------------------------ fetching
def _request(v: dict[str, Any]) -> StockBarsRequest:
    return StockBarsRequest(symbol_or_symbols=v["symbols"], timeframe=TimeFrame.Minute, start=v["start"],
                            end=v["end"])


@pytest.mark.benchmark(group="fetch 1Min bars, 10 symbols")
def test_fetch_ours(benchmark: Any, venues: dict[str, Any]) -> None:
    cfg = config_from_dict({"execution": {"max_api_calls_per_minute": 10**6}})
    client = AlpacaClient(cfg, data_url=venues["bars"]["alpaca_data"])
    frame = benchmark.pedantic(client.get_bars, args=(venues["symbols"], "1Min", venues["start"],
                                                      venues["end"]), rounds=3, iterations=1)
    assert frame.height == venues["n_bars"]
    benchmark.extra_info["bars_per_s"] = round(frame.height / benchmark.stats.stats.mean)
    benchmark.extra_info["bars"] = frame.height


@pytest.mark.benchmark(group="fetch 1Min bars, 10 symbols")
def test_fetch_alpaca_py_raw(benchmark: Any, venues: dict[str, Any]) -> None:
    client = StockHistoricalDataClient(LOCAL_KEY, LOCAL_SECRET, raw_data=True,
                                       url_override=venues["bars"]["alpaca_data"])
    got = benchmark.pedantic(client.get_stock_bars, args=(_request(venues),), rounds=3, iterations=1)
    n = sum(len(v) for v in got.values())
    assert n == venues["n_bars"]
    benchmark.extra_info["bars_per_s"] = round(n / benchmark.stats.stats.mean)


@pytest.mark.benchmark(group="fetch 1Min bars, 10 symbols")
def test_fetch_alpaca_py_models(benchmark: Any, venues: dict[str, Any]) -> None:
    client = StockHistoricalDataClient(LOCAL_KEY, LOCAL_SECRET, url_override=venues["bars"]["alpaca_data"])
    got = benchmark.pedantic(client.get_stock_bars, args=(_request(venues),), rounds=1, iterations=1)
    n = sum(len(v) for v in got.data.values())
    assert n == venues["n_bars"]
    benchmark.extra_info["bars_per_s"] = round(n / benchmark.stats.stats.mean)


# ---------------------------------------------------------------------------- requests/second
def _hammer(url: str, params: dict[str, str], n: int, concurrency: int = 16) -> int:
    async def main() -> int:
        ok = 0
        sem = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(headers=AUTH) as s:
            async def one() -> None:
                nonlocal ok
                async with sem, s.get(url, params=params) as r:
                    await r.read()
                    ok += r.status == 200

            await asyncio.gather(*[one() for _ in range(n)])
        return ok

    return asyncio.run(main())


@pytest.fixture(scope="module")
def bars_page(venues: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    url = venues["bars"]["alpaca_data"] + "/v2/stocks/bars"
    params = {"symbols": ",".join(venues["symbols"][:2]), "timeframe": "1Min", "limit": "1000",
              "start": venues["start"].isoformat()}
    import requests

    body = requests.get(url, params=params, headers=AUTH, timeout=10).content
    return url, params, body


@pytest.mark.benchmark(group="venue bars requests (limit=1000)")
def test_venue_bars_requests(benchmark: Any, bars_page: tuple[str, dict[str, str], bytes]) -> None:
    url, params, _ = bars_page
    ok = benchmark.pedantic(_hammer, args=(url, params, REQUESTS), rounds=3, iterations=1)
    assert ok == REQUESTS
    benchmark.extra_info["requests_per_s"] = round(REQUESTS / benchmark.stats.stats.mean)


@pytest.fixture(scope="module")
def fixed_server(bars_page: tuple[str, dict[str, str], bytes], tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[str]:
    body = tmp_path_factory.mktemp("fixed") / "body.json"
    body.write_bytes(bars_page[2])
    code = (
        "import sys; from aiohttp import web\n"
        f"b = open({str(body)!r}, 'rb').read()\n"
        "async def h(r): return web.Response(body=b, content_type='application/json')\n"
        "app = web.Application(); app.router.add_get('/v2/stocks/bars', h)\n"
        "web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), access_log=None, print=None)\n"
    )
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)])
    url = f"http://127.0.0.1:{port}/v2/stocks/bars"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.benchmark(group="venue bars requests (limit=1000)")
def test_bare_aiohttp_fixed_body(benchmark: Any, fixed_server: str,
                                 bars_page: tuple[str, dict[str, str], bytes]) -> None:
    ok = benchmark.pedantic(_hammer, args=(fixed_server, bars_page[1], REQUESTS), rounds=3, iterations=1)
    assert ok == REQUESTS
    benchmark.extra_info["requests_per_s"] = round(REQUESTS / benchmark.stats.stats.mean)


# ------------------------------------------------------------------------------------ streaming
def _stream(url: str, binary: bool, n: int) -> int:
    async def main() -> int:
        headers = {"Content-Type": "application/msgpack"} if binary else None
        dec, enc = (msgpack.unpackb, msgpack.packb) if binary else (orjson.loads, orjson.dumps)
        async with websockets.connect(url, additional_headers=headers, compression=None, max_size=None) as ws:
            await ws.recv()
            await ws.send(enc({"action": "auth", "key": LOCAL_KEY, "secret": LOCAL_SECRET}))
            await ws.recv()
            await ws.send(enc({"action": "subscribe", "trades": ["*"]}))
            await ws.recv()
            got = 0
            while got < n:
                got += sum(1 for m in dec(await ws.recv()) if m["T"] == "t")
            # stop the flow and drain it before closing (a client that stops reading stalls the close)
            await ws.send(enc({"action": "unsubscribe", "trades": ["*"]}))
            while not any(m["T"] == "subscription" for m in dec(await ws.recv())):
                pass
            return got

    return asyncio.run(main())


@pytest.mark.benchmark(group="venue trades streamed to one client")
@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_stream_trades(benchmark: Any, venues: dict[str, Any], codec: str) -> None:
    n = min(STREAM_TRADES, venues["n_trades"])
    got = benchmark.pedantic(_stream, args=(venues["ticks"]["alpaca_stream"], codec == "msgpack", n),
                             rounds=3, iterations=1)
    assert got >= n
    benchmark.extra_info["trades_per_s"] = round(got / benchmark.stats.stats.mean)

