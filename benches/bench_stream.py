"""Streaming benchmarks: our StreamingAdapter beside alpaca-py's StockDataStream, same venue, same run.

The local venue runs in a separate process (`hybridtrader venue`, replaying a synthetic market written to
parquet here), so the figures are the client's own; both clients run in this process, one after the other.

- ``stream_ingest``: trades/s received from a loopback socket at replay speed "max", timed in this
  process's CPU time (trades_per_s_cpu; the wall-clock rate beside it). Ours parses every
  frame (orjson or msgpack) and pushes it into the Rust BarAggregator (one `push_many` per frame), bars
  delivered to an `on_bar` handler; alpaca-py (msgpack, its only wire format) builds a `Trade` model per
  message for a counting handler and aggregates nothing. extra_info: trades_per_s_cpu / _wall.
- ``stream_latency``: a fresh venue per client (started with its send log on) replays the same stretch of
  a session from its open, at the speed that makes that stretch about 50k trades/s; the rate the venue
  actually sent is reported as trades_per_s. Tick-to-handler latency is measured per trade: the wall time
  its trade handler saw it minus the wall time the venue handed its frame to the socket (both
  `time.time_ns`, one host clock; trades matched by their order on the connection, checked by their
  timestamps). Trades sent in the first SETTLE_S are skipped for both clients (connection warm-up).
  The venue batches what is due every millisecond (`venue.stream_tick_ms` 1, about 70 trades a frame at
  this rate), or sends a frame as soon as each event is due (tick 0: several thousand frames a second of
  a few trades, the harder case); frames_per_s is reported. Both clients run with the objects alive at
  their start frozen out of the garbage collector (ours does it itself, `stream.gc_freeze`; for alpaca-py
  the bench calls gc.freeze()): a full collection over this process's heap otherwise stalls either
  client for 40-90 ms.
  Ours also reports its own socket-to-handler latency (frame read off the socket -> handler called).
  extra_info: trades_per_s, latency_p50_us, latency_p99_us, latency_max_us (and
  socket_to_handler_p50_us/p99_us for ours).

Quick by default; ``HYBRIDTRADER_BENCH=full`` for the full sizes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from alpaca.data.live import StockDataStream
from hybridtrader.config import Config
from hybridtrader.market.synth import generate_market
from hybridtrader.stream import StreamingAdapter
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
SYMBOLS = 50
SESSIONS = 3
INGEST_TRADES = 600_000 if FULL else 100_000  # per round, per client (the market has about 775k)
LATENCY_S = 3.0 if FULL else 2.0  # wall seconds per client: the busy first hours of a session
SETTLE_S = 0.25  # wall seconds after the first trade sent that the latency statistics skip (warm-up)
TARGET_RATE = 50_000  # trades/s for the latency group


@pytest.fixture(scope="module")
def market_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    m = generate_market(symbols=SYMBOLS, sessions=SESSIONS, seed=11)
    assert m.trades.height > INGEST_TRADES
    root = tmp_path_factory.mktemp("stream_market")
    m.write(root)
    return root, m.trades


class VenueProcess:
    """`hybridtrader venue` in a child process; `url` once it listens."""

    def __init__(self, market: Path, speed: str, *extra: str) -> None:
        main = "import sys; from hybridtrader.cli import main; sys.exit(main(sys.argv[1:]))"
        cmd = [sys.executable, "-c", main, "venue", "--port", "0", "--speed", speed, "--market", str(market),
               *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 120
        self.url = ""
        for line in self.proc.stdout:
            if m := re.match(r"alpaca_data\s+(http://\S+)", line):
                self.url = m.group(1)
            if line.startswith("serving"):
                break
            if time.monotonic() > deadline:
                break
        if not self.url:
            self.stop()
            raise RuntimeError("venue did not start")
        self.ws = self.url.replace("http://", "ws://")

    def warm_up(self, seconds: float) -> None:
        """Stream trades for a moment so the venue builds its tapes before anything is measured."""

        async def run() -> None:
            a = StreamingAdapter(_config(self), clock=None)
            await a.connect_alpaca("sip")
            await a.subscribe_trades(["*"])
            await asyncio.sleep(seconds)
            await a.close()

        asyncio.run(run())

    def advance_to(self, ts_ns: int) -> None:
        iso = pl.Series([ts_ns]).cast(pl.Datetime("ns", "UTC")).dt.strftime("%Y-%m-%dT%H:%M:%SZ")[0]
        req = urllib.request.Request(
            f"{self.url}/venue/clock", data=f'{{"to": "{iso}"}}'.encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200

    def sends(self, method: str = "GET") -> list[dict[str, Any]]:
        """The venue's send log (GET) or empty it (DELETE)."""
        req = urllib.request.Request(f"{self.url}/venue/sends", method=method)
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())["connections"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def venue_max(market_dir: tuple[Path, pl.DataFrame]) -> Iterator[VenueProcess]:
    v = VenueProcess(market_dir[0], "max")
    v.warm_up(0.5)
    yield v
    v.stop()


def _config(v: VenueProcess) -> Config:
    return Config.model_validate(
        {
            "alpaca": {
                "stream_url": v.ws,
                "data_url": v.url,
                "data_sources": {"stream": {"trade_queue": 4096, "latency_samples": 1 << 20}},
            }
        }
    )


# ------------------------------------------------------------------------------- ingestion
async def _ours_ingest(v: VenueProcess, n: int, encoding: str) -> int:
    a = StreamingAdapter(_config(v), clock=None)
    bars = [0]
    a.on_bar(lambda f: bars.__setitem__(0, bars[0] + f.height))
    await a.connect_alpaca("sip", encoding=encoding)  # type: ignore[arg-type]
    await a.subscribe_trades(["*"])
    while a.counts["trades"] < n:
        await asyncio.sleep(0.005)
    await a.close()
    assert bars[0] > 0 and a.counts["malformed"] == 0
    return a.counts["trades"]


def _alpaca_py_ingest(v: VenueProcess, n: int) -> int:
    stream = StockDataStream(LOCAL_KEY, LOCAL_SECRET, url_override=f"{v.ws}/v2/sip")
    got = [0]

    async def on_trade(t: Any) -> None:
        got[0] += 1
        if got[0] == n:
            await stream.stop_ws()

    stream.subscribe_trades(on_trade, "*")
    stream.run()
    return got[0]


def _timed(benchmark: Any, run: Callable[[], int], n: int) -> None:
    """Rounds of `run` timed in this process's CPU time (the venue's work is in its own process, and other
    load on a shared machine does not count); the wall-clock rate is reported beside it."""
    walls: list[float] = []

    def once() -> int:
        t0 = time.perf_counter()
        got = run()
        walls.append(time.perf_counter() - t0)
        return got

    assert benchmark.pedantic(once, rounds=3) >= n
    benchmark.extra_info["trades_per_s_cpu"] = round(n / benchmark.stats.stats.min)
    benchmark.extra_info["trades_per_s_wall"] = round(n / min(walls))


@pytest.mark.benchmark(group="stream_ingest", timer=time.process_time)
@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_ingest_ours(benchmark: Any, venue_max: VenueProcess, encoding: str) -> None:
    _timed(benchmark, lambda: asyncio.run(_ours_ingest(venue_max, INGEST_TRADES, encoding)), INGEST_TRADES)


@pytest.mark.benchmark(group="stream_ingest", timer=time.process_time)
def test_ingest_alpaca_py_stockdatastream(benchmark: Any, venue_max: VenueProcess) -> None:
    n = INGEST_TRADES // 5  # it is several times slower: a smaller count, the rate is what counts
    _timed(benchmark, lambda: _alpaca_py_ingest(venue_max, n), n)


# --------------------------------------------------------------------------------- latency
@pytest.fixture(params=[1.0, 0.0], ids=["tick1ms", "tick0"])
def venue_paced(
    market_dir: tuple[Path, pl.DataFrame], request: pytest.FixtureRequest
) -> Iterator[VenueProcess]:
    """A fresh paced venue per client, so both replay the same stretch of the second session."""
    ts = np.sort(market_dir[1]["ts"].dt.epoch("ns").to_numpy())
    day = ts // (86_400 * 10**9)
    second = ts[day == np.unique(day)[1]]
    # The speed at which the first TARGET_RATE x LATENCY_S trades of the session take LATENCY_S wall seconds.
    speed = (second[TARGET_RATE * int(LATENCY_S)] - second[0]) / (LATENCY_S * 1e9)
    v = VenueProcess(market_dir[0], f"{speed:.3f}", "--record-sends", "--stream-tick-ms", str(request.param))
    v.warm_up(1.0)
    v.advance_to(int(second[0]))  # the clock has run since the venue started: to the second session's open
    v.sends("DELETE")
    yield v
    v.stop()


async def _ours_paced(v: VenueProcess, seconds: float) -> dict[str, Any]:
    a = StreamingAdapter(_config(v), clock=None)
    handler_ns: list[np.ndarray] = []
    trade_ns: list[np.ndarray] = []

    def on_trade(f: pl.DataFrame) -> None:
        now = time.time_ns()
        t = f["ts"].to_numpy().view(np.int64)  # datetime64[ns] -> ns since the epoch
        trade_ns.append(t)
        handler_ns.append(np.full(t.size, now, dtype=np.int64))

    a.on_trade(on_trade)
    await a.connect_alpaca("sip")
    await a.subscribe_trades(["*"])
    await asyncio.sleep(seconds)
    await a.close()
    s = a.stats()
    return {
        "handler_ns": np.concatenate(handler_ns),
        "trade_ns": np.concatenate(trade_ns),
        "p50": s["latency_p50_us"],
        "p99": s["latency_p99_us"],
    }


def _alpaca_py_paced(v: VenueProcess, seconds: float) -> dict[str, Any]:
    gc.collect()
    gc.freeze()  # what our adapter does at its start (stream.gc_freeze), so both are measured alike
    stream = StockDataStream(LOCAL_KEY, LOCAL_SECRET, url_override=f"{v.ws}/v2/sip")
    handler_ns: list[int] = []
    trade_ns: list[int] = []
    t0 = time.monotonic()

    async def on_trade(t: Any) -> None:
        handler_ns.append(time.time_ns())
        ts = t.timestamp
        trade_ns.append(int(ts.timestamp()) * 10**9 + ts.microsecond * 1000)
        if time.monotonic() - t0 >= seconds and len(handler_ns) % 100 == 0:
            await stream.stop_ws()

    stream.subscribe_trades(on_trade, "*")
    stream.run()
    return {"handler_ns": np.array(handler_ns), "trade_ns": np.array(trade_ns)}


def _record(benchmark: Any, v: VenueProcess, r: dict[str, Any], resolution_ns: int) -> None:
    """Match the handled trades with the venue's send log (the n-th trade handled is the n-th sent on the
    connection; their timestamps, at the client's resolution, must agree) and record the latencies."""
    (conn,) = v.sends()
    sent = conn["tapes"]["trades"]
    n = r["handler_ns"].size
    sent_ts, sent_ns = np.asarray(sent["ts"])[:n], np.asarray(sent["sent_ns"])[:n]
    assert np.array_equal(sent_ts // resolution_ns, r["trade_ns"] // resolution_ns), "trades out of step"
    keep = sent_ns >= sent_ns[0] + int(SETTLE_S * 1e9)
    lat_us = (r["handler_ns"][keep] - sent_ns[keep]) / 1000.0
    span_s = (sent_ns[-1] - sent_ns[0]) / 1e9
    benchmark.extra_info.update(
        trades_per_s=round(n / span_s),
        frames_per_s=round(np.unique(sent_ns).size / span_s),
        latency_p50_us=round(float(np.percentile(lat_us, 50)), 1),
        latency_p99_us=round(float(np.percentile(lat_us, 99)), 1),
        latency_max_us=round(float(lat_us.max()), 1),
    )


@pytest.mark.benchmark(group="stream_latency")
def test_latency_ours(benchmark: Any, venue_paced: VenueProcess) -> None:
    v = venue_paced
    r = benchmark.pedantic(lambda: asyncio.run(_ours_paced(v, LATENCY_S)), rounds=1)
    _record(benchmark, v, r, 1)
    benchmark.extra_info.update(
        socket_to_handler_p50_us=round(r["p50"], 1), socket_to_handler_p99_us=round(r["p99"], 1)
    )


@pytest.mark.benchmark(group="stream_latency")
def test_latency_alpaca_py_stockdatastream(benchmark: Any, venue_paced: VenueProcess) -> None:
    v = venue_paced
    r = benchmark.pedantic(lambda: _alpaca_py_paced(v, LATENCY_S), rounds=1)
    _record(benchmark, v, r, 1000)  # its Trade.timestamp is a datetime: microseconds
