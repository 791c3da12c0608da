"""Engine benchmarks (issue 12's targets): our engine beside NautilusTrader, vectorbt and backtrader, each
the fastest of three runs.

Scenarios, all on data from `market.synth.generate_market` (seeded), every engine running the same strategy
(an EMA 10/30 crossover holding +100 / -100 shares, one market order per change of sign; see
benches/peers/engine_peers.py for the exact rule):
- ``engine_ticks_1x``: trade ticks of one equity (full: ~1M; quick: ~35k) -> 1-minute bars -> strategy ->
  orders. NautilusTrader builds its bars internally (``1-MINUTE-LAST-INTERNAL`` from TradeTicks).
- ``engine_ticks_10x``: the same with 10 symbols (full: ~100k ticks each; quick: ~8k).
- ``engine_bars``: 1-minute bars only, 50 symbols x 20 sessions (quick: 10 x 5). Peers: NautilusTrader with
  and without the strategy, vectorbt's vectorised `Portfolio.from_signals`, backtrader.
- ``engine_mean_reversion``: ours only, the seed's intraday_mean_reversion (rules only) on 1-minute bars,
  50 symbols x 252 sessions (~4.9M bars; quick: 10 x 5); target >= 1M bars/s.
- ``engine_memory``: ours only, peak RSS of `hybridtrader backtest` (a child process) on a bar store of N
  and 4N sessions (full: 50 symbols, 10 and 40; quick: 5 symbols, 2 and 8): streamed by session, the
  peak must not grow with the sessions the way the data does.
Ours runs through `backtest.run.run_backtest` (feed -> Trader -> SimBroker on the Rust fill simulator ->
ledger, exposure, slippage; the run's tables and summary), with strategy/examples/ema_cross.py for the EMA
scenarios with cash and exposure caps that refuse no order (the peers have no caps), time slicing and
toxic-time filters off (each order one child, as in the peers); the mean reversion with the default caps.
Figures are ticks or bars per second of process CPU time (single-threaded engines on a shared machine: other
load does not inflate CPU time as it does wall time). The peers run in their own interpreter
(`.benchmarks/peers`, installed by benches/peers/install.py): their set-up (loading the data into their
objects, a warm-up run) is untimed, as ours is. Every engine's order count is checked against a reference
count of EMA sign changes computed here; backtrader's EMA seeds with a mean (the others with the first close),
so it may differ by a few orders. At the end the module prints one table: engine, rate, orders, ours / peer.
``HYBRIDTRADER_BENCH=full`` for the full sizes; quick by default.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hybridtrader.backtest.feed import FrameFeed, TickFeed
from hybridtrader.backtest.run import Backtest, run_backtest
from hybridtrader.config import Config, with_overrides
from hybridtrader.data.bar_store import BarStore
from hybridtrader.market.calendar import sessions
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy.examples.ema_cross import EmaCross
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
PEERS_DIR = Path(__file__).resolve().parent / "peers"
# every engine, ours and the peers, gets the fastest of three runs (one run is one noisy sample)
ROUNDS = 3
MEAN_REVERSION = (50, 252) if FULL else (10, 5)  # symbols, sessions
MEMORY = (50, 10) if FULL else (5, 2)  # symbols, N (and 4N) sessions
FAST, SLOW = 10, 30
# scenario -> generate_market arguments (full, quick)
FULL_MARKETS: dict[str, dict[str, Any]] = {
    "ticks_1x": {"symbols": 1, "sessions": 20, "trades_per_minute": 100.0},
    "ticks_10x": {"symbols": 10, "sessions": 20, "trades_per_minute": 10.0},
    "bars": {"symbols": 50, "sessions": 20, "ticks": False},
}
QUICK_MARKETS: dict[str, dict[str, Any]] = {
    "ticks_1x": {"symbols": 1, "sessions": 5, "trades_per_minute": 20.0},
    "ticks_10x": {"symbols": 10, "sessions": 5, "trades_per_minute": 4.0},
    "bars": {"symbols": 10, "sessions": 5, "ticks": False},
}
MARKETS = FULL_MARKETS if FULL else QUICK_MARKETS
# peer -> (its scenario, its name in engine_peers.py, whether it runs the strategy)
PEERS = {
    "nautilus_ticks_1x": ("ticks_1x", "nautilus_ticks", True),
    "nautilus_ticks_10x": ("ticks_10x", "nautilus_ticks", True),
    "nautilus_bars": ("bars", "nautilus_bars", True),
    "nautilus_bars_no_strategy": ("bars", "nautilus_bars_no_strategy", False),
    "vectorbt_bars": ("bars", "vectorbt_bars", True),
    "backtrader_bars": ("bars", "backtrader_bars", True),
}
# The report: scenario -> engine -> {"text": the row, "rate": its rate (None: not a rate)}
FIGURES: dict[str, dict[str, dict[str, Any]]] = {}


def ema(x: list[float], n: int) -> list[float]:
    """y_t = a x_t + (1 - a) y_{t-1}, a = 2 / (n + 1), y_0 = x_0: the textbook recursion, step by step (an
    independent check of the engines' vectorised and incremental EMAs)."""
    a = 2.0 / (n + 1)
    out, y = [], x[0]
    for v in x:
        y = a * v + (1.0 - a) * y
        out.append(y)
    return out


def reference_orders(bars: pl.DataFrame) -> int:
    """Orders of the EMA crossover: per symbol, one at the first bar where EMA(30) has seen 30 closes and one
    at every later change of the sign of EMA(10) - EMA(30) (ties count as long, as the peers hold them)."""
    total = 0
    for (_,), rows in bars.sort("symbol", "ts").group_by("symbol", maintain_order=True):
        close = rows["close"].to_list()
        if len(close) < SLOW:
            continue
        long = (np.array(ema(close, FAST)) >= np.array(ema(close, SLOW)))[SLOW - 1 :]
        total += 1 + int(np.count_nonzero(long[1:] != long[:-1]))
    return total


class Market:
    """One scenario's data: the frames ours reads, a parquet file the peers read, and the reference count."""

    def __init__(self, name: str, directory: Path) -> None:
        args = MARKETS[name]
        market = generate_market(seed=7, quotes_per_trade=0.0, **args)
        self.tick_data = args.get("ticks", True)
        self.ticks = market.trades.sort("ts", maintain_order=True)  # one tape in time order, as fed live
        self.bars = market.bars_1m
        self.symbols = args["symbols"]
        self.orders = reference_orders(self.bars)
        self.path = directory / f"{name}.parquet"
        ns = pl.col("ts").dt.epoch("ns")
        if self.tick_data:
            self.ticks.select("symbol", ns, "price", "size").write_parquet(self.path)
        else:
            self.bars.select("symbol", ns, "open", "high", "low", "close", "volume").write_parquet(self.path)

    def units(self) -> tuple[int, str]:
        """What the scenario's rates count: trade ticks, or bars."""
        return (self.ticks.height, "ticks") if self.tick_data else (self.bars.height, "bars")


class PeerProcess:
    """A peer engine in the peers' interpreter (benches/peers/engine_peers.py), driven by JSON lines."""

    cpu_total = 0.0  # CPU seconds of every timed peer run so far: the peers' benchmark clock

    def __init__(self, python: Path, peer: str, data: Path, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [python, PEERS_DIR / "engine_peers.py"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=log.open("w"), text=True,
        )  # fmt: skip
        self._send(op="prepare", peer=peer, path=str(data))  # loads and warms up while other work goes on
        self._ready: dict[str, Any] | None = None

    def _send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            return {"error": f"exited with status {self.proc.wait()} (see {self.log})"}
        return json.loads(line)

    def ready(self) -> dict[str, Any]:
        """The prepare reply: {"version": ...} or {"error": ...}."""
        if self._ready is None:
            self._ready = self._reply()
        return self._ready

    def reset(self) -> None:
        self._send(op="reset")
        self._reply()

    def run(self) -> dict[str, Any]:
        self._send(op="run")
        reply = self._reply()
        if "error" in reply:
            raise RuntimeError(f"peer run failed: {reply['error']} (see {self.log})")
        PeerProcess.cpu_total += reply["cpu"]
        return reply

    def close(self) -> None:
        self.proc.terminate()  # it may still be preparing (a deselected benchmark)
        self.proc.wait()


def peer_cpu_clock() -> float:
    """The benchmark timer of the peer groups: pytest-benchmark reads it around each run, so a round's
    duration is the CPU time the peer process reported for that run (not the pipe round trip)."""
    return PeerProcess.cpu_total


@pytest.fixture(scope="module")
def markets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Market]:
    directory = tmp_path_factory.mktemp("engine_markets")
    return {name: Market(name, directory) for name in MARKETS}


@pytest.fixture(scope="module")
def peers(markets: dict[str, Market], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every peer process, started at once so that their set-ups overlap; or the reason there are none."""
    install = subprocess.run([sys.executable, PEERS_DIR / "install.py"], capture_output=True, text=True)
    if install.returncode:
        reason = (install.stderr.strip().splitlines() or ["install.py failed"])[-1]
        yield dict.fromkeys(PEERS, reason)
        return
    python = Path(install.stdout.strip().splitlines()[-1])
    logs = tmp_path_factory.mktemp("engine_peers")
    procs = {
        name: PeerProcess(python, peer, markets[scenario].path, logs / f"{name}.log")
        for name, (scenario, peer, _) in PEERS.items()
    }
    yield procs
    for proc in procs.values():
        proc.close()


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the figures side by side once the module's benchmarks have run."""
    yield
    lines = ["", f"engine benchmarks ({'full' if FULL else 'quick'} sizes; rates in process CPU time)"]
    for scenario, rows in FIGURES.items():
        ours = rows.get("ours", {}).get("rate")
        for engine, row in rows.items():
            ratio = (
                f"  ours / this = {ours / row['rate']:.2f}x"
                if ours and row.get("rate") and engine != "ours"
                else ""
            )
            lines.append(f"  {scenario:10} {engine:26} {row['text']}{ratio}")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        for line in lines:
            reporter.write_line(line)


def tolerance(market: Market) -> int:
    """Orders by which an engine may differ from the reference: two per symbol or 1%."""
    return max(2 * market.symbols, market.orders // 100)


def record(scenario: str, engine: str, text: str, rate: float | None = None) -> None:
    FIGURES.setdefault(scenario, {})[engine] = {"text": text, "rate": rate}


def record_rate(
    scenario: str, engine: str, count: int, unit: str, seconds: float, orders: int, reference: int
) -> float:
    rate = count / seconds
    record(scenario, engine, f"{rate:>12,.0f} {unit}/s  orders {orders:>6} (reference {reference})", rate)
    return rate


def bench_peer(benchmark: Any, name: str, markets: dict[str, Market], peers: dict[str, Any]) -> None:
    scenario, _, with_strategy = PEERS[name]
    market = markets[scenario]
    expected = market.orders if with_strategy else 0
    proc = peers[name]
    ready = {"error": proc} if isinstance(proc, str) else proc.ready()
    if "error" in ready:
        record(scenario, name, f"not measured: {ready['error']}")
        pytest.skip(f"{name}: {ready['error']}")
    reply = benchmark.pedantic(proc.run, setup=proc.reset, rounds=ROUNDS)
    count, unit = market.units()
    rate = record_rate(scenario, name, count, unit, benchmark.stats.stats.min, reply["orders"], expected)
    benchmark.extra_info.update({f"{unit}_per_s": rate, "orders": reply["orders"], "peer": ready["version"]})
    # same strategy, same signals: the same orders, up to the warm-up of backtrader's mean-seeded EMAs and the
    # last bar of a tick stream, which NautilusTrader closes only when a later tick arrives
    assert abs(reply["orders"] - expected) <= tolerance(market) * with_strategy, reply


@pytest.mark.benchmark(timer=peer_cpu_clock)
@pytest.mark.parametrize("name", list(PEERS))
def test_peer(benchmark, name: str, markets, peers) -> None:
    benchmark.group = f"engine_{PEERS[name][0]}"
    bench_peer(benchmark, name, markets, peers)


def engine_config(*sets: str) -> Config:
    """Each order one child (no time slicing, no toxic-time calendar) and no MLflow lookup."""
    return with_overrides(Config(data_dir="/tmp/hybridtrader-bench"), [
        "execution.enable_time_slicing=false", "execution.enable_toxic_time_filtering=false",
        "backtest.use_models=false", *sets,
    ])  # fmt: skip


def ema_config() -> Config:
    """Room for every flip: the peers' EMA strategy has no risk caps, so ours must not refuse an order."""
    return engine_config(
        "backtest.cash=1000000000",
        "risk.exposure.books.swing.max_open_positions=100000",
        "risk.exposure.books.swing.max_order_notional=1000000000",
    )


@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("scenario", list(MARKETS))
def test_ours(benchmark, scenario: str, markets) -> None:
    benchmark.group = f"engine_{scenario}"
    market = markets[scenario]
    cfg = ema_config()

    def run() -> Backtest:
        feed = TickFeed(market.ticks) if market.tick_data else FrameFeed(market.bars)
        return run_backtest(cfg, feed=feed, strategies=[EmaCross(cfg)])

    bt = benchmark.pedantic(run, rounds=ROUNDS)
    count, unit = market.units()
    orders = bt.result.orders.height
    rate = record_rate(scenario, "ours", count, unit, benchmark.stats.stats.min, orders, market.orders)
    benchmark.extra_info.update({f"{unit}_per_s": rate, "orders": orders, "fills": bt.result.fills.height})
    assert not bt.result.skipped, bt.result.skipped
    assert abs(orders - market.orders) <= tolerance(market), (orders, market.orders)


@pytest.mark.benchmark(group="engine_mean_reversion", timer=time.process_time)
def test_mean_reversion_ours(benchmark) -> None:
    symbols, n_sessions = MEAN_REVERSION
    bars = generate_market(symbols, n_sessions, seed=0, ticks=False, mean_reversion=0.3).bars_1m
    cfg = engine_config()

    def run() -> Backtest:
        return run_backtest(cfg, feed=FrameFeed(bars), strategies=[IntradayMeanReversion(cfg)])

    bt = benchmark.pedantic(run, rounds=ROUNDS)
    orders, refused = bt.result.orders.height, sum(bt.result.skipped.values())
    rate = bars.height / benchmark.stats.stats.min
    text = f"{rate:>12,.0f} bars/s  orders {orders:>6} ({refused} refused by caps; target 1,000,000 bars/s)"
    record("meanrev", "ours", text, rate)
    benchmark.extra_info.update({"bars_per_s": rate, "orders": orders, "fills": bt.result.fills.height})
    assert bt.result.bars == bars.height and orders > 0


# The child reports its own high-water mark: its rusage ru_maxrss would include the parent's resident pages it
# was forked with (Linux keeps the maximum across exec), i.e. the size of this pytest process.
PEAK_RSS_CHILD = (
    "import re, sys; from hybridtrader.cli import main; rc = main(); "
    "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())[1], file=sys.stderr); "
    "sys.exit(rc)"
)


def peak_rss_mb(store: Path, days: list[date], out: Path) -> float:
    """Peak resident memory (VmHWM, MB) of `hybridtrader backtest` on `days` of the bar store, in a child."""
    args = [
        sys.executable, "-c", PEAK_RSS_CHILD, "backtest", "--strategy", "intraday_mean_reversion",
        "--data", "store", "--start", days[0].isoformat(), "--end", days[-1].isoformat(),
        "--set", f"backtest.store={store}", "--set", "backtest.use_models=false", "--out", str(out),
        "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1]) / 1024


@pytest.mark.benchmark(group="engine_memory")
def test_memory_ours(benchmark, tmp_path: Path) -> None:
    """Reported, not asserted here (tests/backtest asserts flatness on a larger store): the peak RSS of N and
    4N sessions beside the size of the 4N sessions' bars in memory."""
    symbols, n = MEMORY
    bars = generate_market(symbols, 4 * n, seed=3, ticks=False).bars_1m
    BarStore(tmp_path / "bars").upsert(bars, "1Min")
    days = sessions(date(2024, 1, 2), date(2024, 12, 31))[: 4 * n]
    few = peak_rss_mb(tmp_path / "bars", days[:n], tmp_path / "few")
    many = benchmark.pedantic(peak_rss_mb, args=(tmp_path / "bars", days, tmp_path / "many"), rounds=1)
    data_mb = bars.estimated_size() / 2**20
    benchmark.extra_info.update({"peak_rss_mb_n": few, "peak_rss_mb_4n": many, "bars_mb_4n": data_mb})
    record("memory", "ours", f"peak RSS {few:,.0f} MB for {n} sessions, {many:,.0f} MB for {4 * n} "
           f"({symbols} symbols; their bars take {data_mb:,.0f} MB in memory)")  # fmt: skip
