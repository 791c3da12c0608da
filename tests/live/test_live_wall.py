"""The node in real time: WallClock + StreamFeed (bars built from the venue's Alpaca trade stream) +
AlpacaBroker (REST + trade_updates), against the local venue serving its market as wall time passes (60
market seconds per wall second) over loopback. Orders go out and are filled, /metrics moves, live fills
carry the configured fees (hand-computed here), and a node that dies mid-run restarts from its journal's
checkpoint with the slippage model's, strategy's and breaker's state of the run it continues."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from hybridtrader.config import Config, VenueConfig, with_overrides
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.live.feed import WallClock
from hybridtrader.live.journal import Journal
from hybridtrader.live.node import LiveNode
from hybridtrader.venue import ReplayMarket, Venue
from round_trips import RoundTrips

SPEED = 60.0  # market seconds per wall second
CLI = "import sys; from hybridtrader.cli import main; sys.exit(main())"
COMMISSION, COMMISSION_MIN, SEC, TAF, TAF_CAP = 0.005, 1.0, 27.8e-6, 0.000166, 8.30


class Crash(Exception):
    """Stands for the process dying between two bar times (nothing after it runs)."""


def _config() -> Config:
    return with_overrides(Config(), [
        f"execution.fills.commission_per_share={COMMISSION}",
        f"execution.fills.commission_min={COMMISSION_MIN}",
        f"execution.fills.sec_fee_rate={SEC}", f"execution.fills.taf_per_share={TAF}",
        f"execution.fills.taf_max_per_trade={TAF_CAP}", "live.flatten_on_exit=true",
    ])  # fmt: skip


@pytest.fixture
def wall_venue(live_market: ReplayMarket) -> Iterator[Venue]:
    config = VenueConfig(speed=SPEED, history_until_clock=True, rate_limit_per_minute=1_000_000, impact=False)
    with Venue(config, market=live_market) as v:
        yield v


def _fills_total(metrics: str) -> float:
    lines = metrics.splitlines()
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith("hybridtrader_fills_total{"))


def _expected_fee(side: str, before: float, qty: float, price: float) -> float:
    """Hand-computed: the order's commission max(per share x filled, minimum) grows by this fill's share
    of it; a sell also pays the SEC fee on the notional and the TAF per share up to its cap."""

    def commission(filled: float) -> float:
        return max(COMMISSION * filled, COMMISSION_MIN) if filled > 0 else 0.0

    fee = commission(before + qty) - commission(before)
    if side == "sell":
        fee += SEC * qty * price + min(TAF * qty, TAF_CAP)
    return fee


def _node(make_node: Any, cfg: Config, venue: Venue, journal: Path, on_bar_time: Any, stop: Any) -> LiveNode:
    """A real-time node on `venue`: the clock follows the venue's, the strategy trades at once."""
    clock = WallClock(venue.clock.now_ns(), SPEED)
    return make_node(
        cfg, venue, journal, on_bar_time=on_bar_time, stop=stop, clock=clock, strategies=[RoundTrips(cfg)]
    )


def test_real_time_node_trades_the_stream_with_fees(
    wall_venue: Venue, make_node: Any, tmp_path: Path
) -> None:
    cfg = _config()
    stop = threading.Event()
    scrapes: list[str] = []
    status: dict[str, Any] = {}

    def on_bar_time(node: LiveNode) -> None:
        assert node.ops is not None and node.trader is not None
        if node.trader.n_bars // len(node.symbols) in (4, 12):
            scrapes.append(requests.get(f"{node.ops.url}/metrics", timeout=5).text)
            assert requests.get(f"{node.ops.url}/ready", timeout=5).status_code == 200
        if node.trader.n_bars // len(node.symbols) >= 12:
            status.update(requests.get(f"{node.ops.url}/status", timeout=5).json())
            stop.set()

    node = _node(make_node, cfg, wall_venue, tmp_path / "j.sqlite", on_bar_time, stop)
    try:
        node.start()
        summary = node.run()
    finally:
        node.close()
    assert summary["stopped"] and len(scrapes) == 2
    assert status["stream"]["bars"] >= 12 * 3 and status["stream"]["active"] == "alpaca"
    result = node.result
    # the bars came from the stream: consecutive bar times of the session, all symbols
    assert node.trader is not None and node.trader.n_bars >= 12 * 3
    # orders went out and were filled at the venue, each once
    venue_ids = set(wall_venue.broker.by_client_id)
    assert result.orders.height >= 6 and set(result.orders["client_order_id"]) <= venue_ids
    assert result.fills.height >= 6 and result.fills["side"].n_unique() == 2
    assert _fills_total(scrapes[1]) > _fills_total(scrapes[0])
    # fees: the configured rule, hand-computed, in the ledger and the journal
    filled: dict[str, float] = {}
    for cid, side, qty, price, fee in result.fills.select(
        "client_order_id", "side", "qty", "price", "fee"
    ).iter_rows():
        assert fee == pytest.approx(_expected_fee(side, filled.get(cid, 0.0), qty, price), rel=1e-12)
        filled[cid] = filled.get(cid, 0.0) + qty
    j = Journal(tmp_path / "j.sqlite")
    journaled = {(u.client_order_id, u.filled_qty): u.fee for u in j.fills()}
    j.close()
    assert sorted(journaled.values()) == sorted(result.fills["fee"].to_list())
    assert node.trader.ledger.positions()["fees"].sum() == pytest.approx(result.fills["fee"].sum())
    # the shutdown on stop left the account flat
    assert wall_venue.broker.positions == {}


def test_a_restart_resumes_the_checkpointed_state(wall_venue: Venue, make_node: Any, tmp_path: Path) -> None:
    cfg = _config()
    path = tmp_path / "j.sqlite"
    before: dict[str, Any] = {}

    def crash_after_8(node: LiveNode) -> None:
        t = node.trader
        assert t is not None
        if t.n_bars // len(node.symbols) >= 8 and t.flow.n_fills:
            before.update(
                slippage=t.slippage.to_json(),
                strategy=t.strategies[0].state(),
                breaker=t.exposure.breaker_state(),
                cash=t.ledger.cash,
                positions=dict(t.ledger.net),
                orders=list(t.sent),
                bar_ns=t.now_ns - 60_000_000_000,
            )
            raise Crash

    first = _node(make_node, cfg, wall_venue, path, crash_after_8, threading.Event())
    try:
        first.start()
        with pytest.raises(Crash):
            first.run()
    finally:
        first.close()
    # the state is worth restoring: the model learned from fills, the strategy counted bars
    assert before["slippage"] != SlippageModel(cfg).to_json() and before["strategy"]["seen"] >= 8

    stop = threading.Event()
    after: dict[str, Any] = {}

    def stop_after_3(node: LiveNode) -> None:
        after["bars"] = after.get("bars", 0) + 1
        if after["bars"] >= 3:
            stop.set()

    second = _node(make_node, cfg, wall_venue, path, stop_after_3, stop)
    try:
        second.start()
        t = second.trader
        assert t is not None and second.ready
        assert t.slippage.to_json() == before["slippage"]
        assert t.strategies[0].state() == before["strategy"]
        assert t.exposure.breaker_state() == before["breaker"]
        assert t.ledger.cash == pytest.approx(before["cash"]) and dict(t.ledger.net) == before["positions"]
        assert list(t.sent) == before["orders"]
        # the strategies' history: the bars closed before the restart, from REST
        history = t._history
        assert history is not None and history.group_by("symbol").len()["len"].to_list() == [5, 5, 5]
        assert history["ts"].dt.epoch("ns").max() >= before["bar_ns"]
        second.run()
    finally:
        second.close()
    # nothing was sent twice; the account ends flat
    sent = list(second.trader.sent) if second.trader else []
    assert len(sent) > len(before["orders"])
    assert sorted(sent) == sorted(o.client_order_id for o in wall_venue.broker.orders.values())
    assert wall_venue.broker.positions == {}


def test_cli_with_paper_keys_trades_in_real_time_on_the_configured_urls(
    live_market: ReplayMarket, tmp_path: Path
) -> None:
    """`hybridtrader live` with Alpaca keys and URLs configured (here: a venue that only takes those keys,
    serving its market at 60x) trades in real time, names its endpoints, and never prints the secret."""
    key, secret = "PKTEST0123456789", "paper-secret-0123456789abcdef"
    config = VenueConfig(speed=SPEED, history_until_clock=True, rate_limit_per_minute=1_000_000, impact=False)
    with Venue(config, market=live_market, keys={key: secret}) as venue:
        ws = venue.url.replace("http://", "ws://")
        path = tmp_path / "config.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "data_dir": str(tmp_path / "data"),
                    "alpaca": {
                        "api_key": "${TEST_APCA_KEY}",
                        "secret_key": "${TEST_APCA_SECRET}",
                        "trading_url": venue.url,
                        "data_url": venue.url,
                        "stream_url": ws,
                    },
                    "live": {
                        "watchlist": venue.market.names,
                        "clock_speed": SPEED,
                        "sessions": 1,
                        "strategies": [f"{Path(__file__).parent / 'round_trips.py'}:RoundTrips"],
                    },
                    "ml_training": {"model_registry": {"enabled": False}},
                }
            )
        )
        env = {**os.environ, "TEST_APCA_KEY": key, "TEST_APCA_SECRET": secret}
        done = subprocess.run(
            [sys.executable, "-c", CLI, "live", "--config", str(path), "--duration", "12"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        out = " ".join((done.stdout + done.stderr).split())  # the console wraps its lines
        assert done.returncode == 0, out[-2000:]
        assert f"trading on {venue.url} (stream {ws}/stream), market data {venue.url} (stream {ws})" in out
        assert secret not in out
        assert len(venue.broker.by_client_id) >= 3 and venue.broker.activities  # orders sent, filled
        assert venue.broker.positions == {}  # flattened on the way out
    assert (tmp_path / "data" / "live" / "alpaca.sqlite").exists()
