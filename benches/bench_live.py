"""The live node against the local venue over loopback, its clock moved by the node (the two latency
benches run the venue in a child process, as a broker is; the others in-process):

- bar close to order sent: the seed's mean-reversion strategy on 50 symbols, 200 bar times (full; 10
  symbols, 60 bar times quick), target p99 < 5 ms; and the two seed strategies together (the swing one's
  features carried too: `strategy.streaming.FeatureState`). Per order, from its bar time's bars in hand
  (perf_counter, once the node has done a session's open or close work and, the first time, gone live)
  to: "decided" (the Trader is done with the bar time: the node's flush begins), "sent" (the request's
  bytes are in the kernel's send buffer of the order connection: `sendall` returned) and "answered"
  (its HTTP answer read); p50/p99 of each, and of decided -> sent (the journal commit and the
  write). Also the Trader's own CPU time per bar time (thread time of `run_batch`, the first bar time,
  which starts the strategies' features on the history, left out): on a busy machine the wall-clock
  figures measure the load, this one the work; where the rest of its wall time went: waiting for a CPU
  (the thread's run-queue time, Linux schedstat: other processes, the venue's among them) and blocked
  (wall - CPU - run queue: waiting for the GIL another thread of the node holds, or for I/O); and the
  garbage collector's pauses inside those bar times (the node freezes its start-up heap out of the
  collector when it goes live). And from the Trader's start on a bar time to its orders' write ("to
  sent", the bar times with orders): the node thread's run-queue wait (a wake-up of the venue's process
  by the write can take the node's CPU: a busy 2-core machine), the CPU of the node's other threads (the
  trading stream, the ops server, Polars' pool) and of the venue's process. Peer: a bare alpaca-py
  `submit_order` round trip to the same venue.
- a bar time of 50 orders: journal commit + `AlpacaBroker.submit_many` (pipelined, one write), from the
  start of the commit to each order sent / answered; peer: alpaca-py submitting the same 50 one after the
  other (what the node did before), to each answer (order k+1 leaves when order k is answered).
- reconcile: 100 open orders and 500 positions (full; 20 and 50 quick); target < 5 s. Peer: the bare
  alpaca-py calls that fetch the same state (`get_orders` + `get_all_positions`).
- restart to ready: a new node on a journal 200 bar times into a session (reconcile + replay); target
  < 10 s (Python's own start-up is not included: see the import figure).

Quick by default; HYBRIDTRADER_BENCH=full for the sizes above.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest
from hybridtrader.cli.live_cmd import start_venue
from hybridtrader.config import Config, VenueConfig, with_overrides
from hybridtrader.credentials import LOCAL_KEY, LOCAL_SECRET, alpaca_keys
from hybridtrader.engine.orders import Order, OrderRequest
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.live.broker import AlpacaBroker
from hybridtrader.live.feed import VenueClock
from hybridtrader.live.journal import Journal
from hybridtrader.live.node import Endpoints, LiveNode
from hybridtrader.live.reconcile import reconcile
from hybridtrader.market.calendar import NEW_YORK, sessions
from hybridtrader.market.synth import generate_market
from hybridtrader.venue import ReplayMarket, Venue

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
LATENCY_SYMBOLS = 50 if FULL else 10
OPEN_ORDERS, POSITIONS = (100, 500) if FULL else (20, 50)


def _config() -> Config:
    return with_overrides(Config(data_dir="/tmp/hybridtrader-bench"), [
        "execution.enable_time_slicing=false", "execution.enable_toxic_time_filtering=false",
        "live.use_models=false", "live.flatten_on_exit=false",
    ])  # fmt: skip


def _venue(symbols: int) -> Venue:
    names = [f"S{i:03d}" for i in range(symbols)]
    market = ReplayMarket.from_synthetic(
        generate_market(symbols=names, sessions=1, start="2024-01-02", seed=5, trades_per_minute=2.0)
    )
    cfg = VenueConfig(speed="max", history_until_clock=True, rate_limit_per_minute=10**9, impact=False,
                      cash=1e9)  # fmt: skip
    return Venue(cfg, market=market).start()


def _node(cfg: Config, url: str, symbols: list[str], journal: Path, stop: threading.Event,
          on_bar: Any = None) -> LiveNode:  # fmt: skip
    ep = Endpoints(url, url.replace("http://", "ws://") + "/stream", url, url, alpaca_keys(cfg, url))
    first = datetime.fromtimestamp(VenueClock(url).now_ns() / 1e9, UTC).astimezone(NEW_YORK).date()
    limiter = RateLimiter(cfg, rates=[(10**9, 60.0)])
    return LiveNode(cfg, ep, sessions=sessions(first, first), symbols=symbols, journal=Journal(journal),
                    stop=stop, on_bar_time=on_bar, limiter=limiter)  # fmt: skip


@contextlib.contextmanager
def _venue_process(symbols: int, workdir: Path) -> Iterator[tuple[str, list[str], int]]:
    """The venue in a child process, as a broker is: its work does not share the node's GIL (in-process,
    its thread takes the GIL whenever a write releases it, and a timestamp after the write waits for
    it). Its URL, symbols and process id."""
    cfg = with_overrides(_config(), ["venue.impact=false", "venue.cash=1000000000", "live.seed=5"])
    proc, url = start_venue(cfg, symbols, 1, workdir)
    try:
        assets = TradingClient(LOCAL_KEY, LOCAL_SECRET, url_override=url).get_all_assets()
        yield url, sorted(a.symbol for a in assets), proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


SCHEDSTAT = Path("/proc/thread-self/schedstat")  # CPU ns, run-queue wait ns, time slices (Linux)


def _runqueue_s() -> float:
    """Seconds the calling thread has waited in the run queue for a CPU (nan where schedstat is missing)."""
    try:
        return int(SCHEDSTAT.read_text().split()[1]) / 1e9
    except OSError:
        return math.nan


class _Threads:
    """Summed CPU and run-queue ns of some threads (Linux schedstat; the files are kept open, so a reading
    costs a few microseconds; a thread that has ended counts as 0 from then on; no schedstat: nan)."""

    def __init__(self, tasks: list[Path]) -> None:
        self.files = []
        for task in tasks:
            with contextlib.suppress(OSError):
                self.files.append((task / "schedstat").open("rb", buffering=0))

    @classmethod
    def of(cls, pid: int | str, but: int | None = None) -> _Threads:
        """The threads of process `pid` ("self": this one), but thread `but`."""
        tasks = Path(f"/proc/{pid}/task")
        return cls([t for t in tasks.iterdir() if t.name != str(but)] if tasks.is_dir() else [])

    def read(self) -> tuple[float, float]:
        if not self.files:
            return math.nan, math.nan
        cpu = queued = 0
        for f in self.files:
            f.seek(0)
            fields = f.read().split()
            if fields:
                cpu += int(fields[0])
                queued += int(fields[1])
        return cpu / 1e9, queued / 1e9


def _pcts(name: str, values: Any) -> dict[str, float]:
    v = np.asarray(values, dtype=float) * 1e3
    return {f"{name}_p50_ms": float(np.percentile(v, 50)), f"{name}_p99_ms": float(np.percentile(v, 99))}


SEED_STRATEGIES = ["intraday_mean_reversion", "intraday_mean_reversion,swing_trend_following"]


@pytest.mark.parametrize("strategies", SEED_STRATEGIES)
def test_bar_close_to_order_sent(benchmark: Any, tmp_path: Path, strategies: str) -> None:
    cfg = with_overrides(_config(), [f"live.strategies=[{strategies}]"])
    bar_times = 200 if FULL else 60
    with _venue_process(LATENCY_SYMBOLS, tmp_path) as (url, names, venue_pid):
        stop = threading.Event()
        node = _node(
            cfg,
            url,
            names,
            tmp_path / "j.sqlite",
            stop,
            lambda n: stop.set() if n.trader.n_bars >= bar_times * len(n.symbols) else None,
        )

        cpu: list[float] = []
        wall: list[float] = []
        waited: list[float] = []  # in the run queue
        pauses: list[float] = []  # the garbage collector's, while the Trader runs a bar time (seconds)
        started = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            elif in_bar_time[0]:
                pauses.append(time.perf_counter() - started[0])

        in_bar_time = [False]
        # from the Trader's start on a bar time to its orders' write (the bar times with orders): the node
        # thread's run-queue wait, the CPU of the node's other threads and of the venue's process
        window: list[tuple[float, float, float]] = []
        at_start: list[tuple[float, float, float]] = []

        def run() -> LiveNode:
            node.start()
            trader = node.trader
            assert trader is not None
            run_batch = trader.run_batch
            me = _Threads([Path("/proc/thread-self")])
            others = _Threads.of("self", but=threading.get_native_id())
            venue = _Threads.of(venue_pid)

            def reading() -> tuple[float, float, float]:
                return me.read()[1], others.read()[0], venue.read()[0]

            def timed(batch: Any) -> None:  # the Trader's CPU per bar time: a figure load hardly moves
                in_bar_time[0] = True
                at_start[:] = [reading()]
                q0, t0, w0 = _runqueue_s(), time.thread_time(), time.perf_counter()
                run_batch(batch)
                w1, t1 = time.perf_counter(), time.thread_time()
                waited.append(_runqueue_s() - q0)
                cpu.append(t1 - t0)
                wall.append(w1 - w0)
                in_bar_time[0] = False

            pipe = node.broker.pipe
            write = pipe._write

            def timed_write(data: bytes) -> None:
                write(data)
                if at_start:  # the bar time's first write
                    window.append(tuple(np.subtract(reading(), at_start.pop())))

            trader.run_batch = timed  # type: ignore[method-assign]
            pipe._write = timed_write  # type: ignore[method-assign]
            gc.callbacks.append(on_gc)
            try:
                node.run()
            finally:
                gc.callbacks.remove(on_gc)
            return node

        benchmark.pedantic(run, rounds=1, iterations=1)
        node.close()
        decided, sent, answered = np.asarray(node.jbroker.timings).T
        client = TradingClient(LOCAL_KEY, LOCAL_SECRET, url_override=url)
        peer = []
        for i in range(50):
            t0 = time.perf_counter()
            client.submit_order(MarketOrderRequest(symbol=names[i % LATENCY_SYMBOLS], qty=1, side="buy",
                                                   time_in_force="day"))  # fmt: skip
            peer.append(time.perf_counter() - t0)
    assert sent.size > 0
    per_bar = np.unique(np.asarray(node.jbroker.timings)[:, 0], return_counts=True)[1]
    figures = {
        "strategies": strategies, "symbols": LATENCY_SYMBOLS, "orders": int(sent.size),
        "most_orders_in_a_bar_time": int(per_bar.max()),
        **_pcts("ours_sent", sent), **_pcts("ours_answered", answered), **_pcts("ours_decided", decided),
        **_pcts("ours_decided_to_sent", sent - decided), **_pcts("trader_cpu_per_bar_time", cpu[1:]),
        **_pcts("trader_wall_per_bar_time", wall[1:]),
        **_pcts("trader_runqueue_wait_per_bar_time", waited[1:]),
        # (the run-queue time read around the two clocks: a few microseconds more, clipped at 0)
        **_pcts("trader_blocked_per_bar_time", np.maximum(np.subtract(wall, cpu) - waited, 0.0)[1:]),
        **_pcts("alpaca_py_submit", peer),
        "gc_pauses_in_bar_times": len(pauses), "gc_longest_pause_ms": max(pauses, default=0.0) * 1e3,
        **_pcts("to_sent_runqueue_wait", [w[0] for w in window[1:]]),
        **_pcts("to_sent_node_other_threads_cpu", [w[1] for w in window[1:]]),
        **_pcts("to_sent_venue_cpu", [w[2] for w in window[1:]]),
    }  # fmt: skip
    benchmark.extra_info.update(figures)
    print(figures)


def test_bar_time_of_50_orders(benchmark: Any, tmp_path: Path) -> None:
    rounds = 10 if FULL else 3
    with _venue_process(50, tmp_path) as (url, names, _):
        clock = VenueClock(url)
        clock.advance_to(clock.now_ns() + 3_600_000_000_000)  # an hour into the session
        journal = Journal(tmp_path / "j.sqlite")
        broker = AlpacaBroker(
            url, None, (LOCAL_KEY, LOCAL_SECRET), limiter=RateLimiter(rates=[(10**9, 60.0)])
        )
        broker.pipe.open()
        sent: list[float] = []
        answered: list[float] = []
        statuses: list[int] = []

        def bar_times() -> None:
            for r in range(rounds):
                orders = [(f"b{r}-{i}", OrderRequest(names[i], "buy", 1.0), r) for i in range(50)]
                t0 = time.perf_counter()
                journal.record_intents([(Order(c, "bench", "intraday", "0", q, ts, 0.0, 0.0), None)
                                        for c, q, ts in orders])  # fmt: skip
                for a in broker.submit_many(orders):
                    statuses.append(a.status)
                    sent.append(a.sent - t0)
                    answered.append(a.answered - t0)

        benchmark.pedantic(bar_times, rounds=1, iterations=1)
        broker.close()
        client = TradingClient(LOCAL_KEY, LOCAL_SECRET, url_override=url)
        peer: list[float] = []
        for r in range(rounds):
            t0 = time.perf_counter()
            for i in range(50):
                req = MarketOrderRequest(symbol=names[i], qty=1, side="buy", time_in_force="day",
                                         client_order_id=f"p{r}-{i}")  # fmt: skip
                client.submit_order(req)
                peer.append(time.perf_counter() - t0)
    assert statuses == [200] * 50 * rounds and len(peer) == 50 * rounds
    figures = {
        "orders_per_bar_time": 50, "bar_times": rounds, **_pcts("ours_sent", sent),
        **_pcts("ours_answered", answered), **_pcts("alpaca_py_sequential_answered", peer),
    }  # fmt: skip
    benchmark.extra_info.update(figures)
    print(figures)


def test_reconcile_open_orders_and_positions(benchmark: Any, tmp_path: Path) -> None:
    venue = _venue(POSITIONS)
    try:
        client = TradingClient(LOCAL_KEY, LOCAL_SECRET, url_override=venue.url)
        venue.clock.advance_to(venue.market.start_ns + 3_600_000_000_000)
        journal = Journal(tmp_path / "j.sqlite")
        for i, sym in enumerate(venue.market.names):
            client.submit_order(MarketOrderRequest(symbol=sym, qty=1, side="buy", time_in_force="day",
                                                   client_order_id=f"p-{i}"))  # fmt: skip
        for i in range(OPEN_ORDERS):
            client.submit_order(LimitOrderRequest(symbol=venue.market.names[i], qty=1, side="buy",
                                                  time_in_force="gtc", limit_price=0.01,
                                                  client_order_id=f"o-{i}"))  # fmt: skip
        for i, sym in enumerate(venue.market.names):
            journal.record_intent(
                Order(f"p-{i}", "bench", "intraday", "0", OrderRequest(sym, "buy", 1.0), 0, 0.0, 0.0)
            )
        for i in range(OPEN_ORDERS):
            limit = OrderRequest(venue.market.names[i], "buy", 1.0, "limit", "gtc", limit_price=0.01)
            journal.record_intent(Order(f"o-{i}", "bench", "intraday", "0", limit, 0, 0.01, 0.0))
        broker = AlpacaBroker(venue.url, None, (LOCAL_KEY, LOCAL_SECRET),
                              limiter=RateLimiter(rates=[(10**9, 60.0)]))  # fmt: skip

        rec = benchmark.pedantic(lambda: reconcile(broker, journal, since_ns=1, start_positions={}),
                                 rounds=1, iterations=1)  # fmt: skip
        ours = benchmark.stats.stats.mean
        t0 = time.perf_counter()
        orders = client.get_orders(GetOrdersRequest(status="all", limit=500))
        positions = client.get_all_positions()
        peer = time.perf_counter() - t0
    finally:
        venue.stop()
    assert rec.ok and len(positions) == POSITIONS and len(orders) >= OPEN_ORDERS
    figures = {"open_orders": OPEN_ORDERS, "positions": POSITIONS, "ours_s": ours,
               "alpaca_py_fetch_s": peer}  # fmt: skip
    benchmark.extra_info.update(figures)
    print(figures)


@pytest.mark.parametrize("bar_times", [200])
def test_restart_to_ready(benchmark: Any, tmp_path: Path, bar_times: int) -> None:
    cfg = _config()
    venue = _venue(LATENCY_SYMBOLS)
    journal = tmp_path / "j.sqlite"
    try:
        stop = threading.Event()
        first = _node(
            cfg,
            venue.url,
            venue.market.names,
            journal,
            stop,
            lambda n: stop.set() if n.trader.n_bars >= bar_times * len(n.symbols) else None,
        )
        first.start()
        first.run()
        first.close()
        ready_at: list[float] = []
        stop2 = threading.Event()

        def on_bar(n: LiveNode) -> None:
            ready_at.append(time.perf_counter())
            stop2.set()

        def restart() -> None:
            node = _node(cfg, venue.url, venue.market.names, journal, stop2, on_bar)
            node.start()
            node.run()  # replays the 200 bar times, trades one live bar time, stops
            node.close()

        t0 = time.perf_counter()
        benchmark.pedantic(restart, rounds=1, iterations=1)
    finally:
        venue.stop()
    figures = {"bar_times_replayed": bar_times, "symbols": LATENCY_SYMBOLS,
               "restart_to_ready_s": ready_at[0] - t0}  # fmt: skip
    benchmark.extra_info.update(figures)
    print(figures)
