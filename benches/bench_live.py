"""The live node against the local venue over loopback (venue in-process, clock moved by the node):

- bar close to order sent: from a bar time's bars in hand to each order's REST submit answered, p50/p99,
  with the seed's mean-reversion strategy on 50 symbols (full; 10 quick); target p99 < 5 ms. Peer: a bare
  alpaca-py `submit_order` round trip to the same venue (the floor any node pays).
- reconcile: 100 open orders and 500 positions (full; 20 and 50 quick); target < 5 s. Peer: the bare
  alpaca-py calls that fetch the same state (`get_orders` + `get_all_positions`).
- restart to ready: a new node on a journal 200 bar times into a session (reconcile + replay); target
  < 10 s (Python's own start-up is not included: see the import figure).

Quick by default; HYBRIDTRADER_BENCH=full for the sizes above.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest
from hybridtrader.config import Config, VenueConfig, with_overrides
from hybridtrader.credentials import LOCAL_KEY, LOCAL_SECRET, alpaca_keys
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.live.broker import AlpacaBroker
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


def _node(cfg: Config, venue: Venue, journal: Path, stop: threading.Event, on_bar: Any = None) -> LiveNode:
    base = venue.url
    ep = Endpoints(base, base.replace("http://", "ws://") + "/stream", base, base, alpaca_keys(cfg, base))
    first = datetime.fromtimestamp(venue.clock.now_ns() / 1e9, UTC).astimezone(NEW_YORK).date()
    day = sessions(first, first)
    return LiveNode(cfg, ep, sessions=day, symbols=venue.market.names, journal=Journal(journal), stop=stop,
                    on_bar_time=on_bar, limiter=RateLimiter(cfg, rates=[(10**9, 60.0)]))  # fmt: skip


def test_bar_close_to_order_sent(benchmark: Any, tmp_path: Path) -> None:
    cfg = _config()
    venue = _venue(LATENCY_SYMBOLS)
    try:
        stop = threading.Event()
        node = _node(
            cfg,
            venue,
            tmp_path / "j.sqlite",
            stop,
            lambda n: stop.set() if n.trader.n_bars >= 200 * len(n.symbols) else None,
        )

        def run() -> LiveNode:
            node.start()
            node.run()
            return node

        benchmark.pedantic(run, rounds=1, iterations=1)
        node.close()
        ours = np.asarray(node.jbroker.latencies) * 1e3
        client = TradingClient(LOCAL_KEY, LOCAL_SECRET, url_override=venue.url)
        peer = []
        for i in range(50):
            t0 = time.perf_counter()
            client.submit_order(MarketOrderRequest(symbol=venue.market.names[i % LATENCY_SYMBOLS], qty=1,
                                                   side="buy", time_in_force="day"))  # fmt: skip
            peer.append((time.perf_counter() - t0) * 1e3)
    finally:
        venue.stop()
    assert ours.size > 0
    figures = {
        "symbols": LATENCY_SYMBOLS, "orders": int(ours.size),
        "ours_p50_ms": float(np.percentile(ours, 50)), "ours_p99_ms": float(np.percentile(ours, 99)),
        "alpaca_py_submit_p50_ms": float(np.percentile(peer, 50)),
        "alpaca_py_submit_p99_ms": float(np.percentile(peer, 99)),
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
            journal.record_intent(f"p-{i}", OrderRequest(sym, "buy", 1.0), 0)
        for i in range(OPEN_ORDERS):
            journal.record_intent(f"o-{i}", OrderRequest(venue.market.names[i], "buy", 1.0, "limit",
                                                         "gtc", limit_price=0.01), 0)  # fmt: skip
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
            venue,
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
            node = _node(cfg, venue, journal, stop2, on_bar)
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
