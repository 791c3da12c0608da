"""A stop (SIGTERM / Ctrl-C) right after a bar time whose entries the venue filled as it took them, before
the node polled those fills: the shutdown's first flatten cannot know those positions, so the node waits
for the broker to confirm every order closed and flattens what the fills left, at a new decision time,
and ends flat. A node restarted on that journal replays both flattens (nothing diverges from what the
venue holds) and trades the session to its end, flat."""

from __future__ import annotations

import threading
from pathlib import Path

from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from hybridtrader.config import Config, with_overrides
from hybridtrader.live.node import LiveNode
from hybridtrader.venue import Venue

ROUND_TRIPS = Path(__file__).with_name("round_trips.py")


def _config() -> Config:
    return with_overrides(Config(), [f"live.strategies=['{ROUND_TRIPS}:RoundTrips']"])


def _open_orders(node: LiveNode) -> list:
    return node.broker.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))


def test_a_stop_after_unpolled_entry_fills_ends_flat_and_restarts(
    live_venue: Venue, make_node, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    stop = threading.Event()
    stopped_at: list[int] = []

    def on_bar_time(node: LiveNode) -> None:
        t = node.trader
        assert t is not None
        # this bar time sent entries: the venue filled them as it took them; the node has not polled yet
        if not stopped_at and any(o.leg == "entry" and o.decision_ns == t.now_ns for o in t.open.values()):
            stopped_at.append(t.now_ns)
            stop.set()

    node = make_node(_config(), live_venue, journal, stop=stop, on_bar_time=on_bar_time)
    try:
        node.start()
        summary = node.run()
        assert summary["stopped"]
        t = stopped_at[0]
        assert node.broker.positions() == {}  # flat at the venue
        assert _open_orders(node) == []
        assert node.journal.get("shutdowns") == [t, t + 1]  # the second flatten closed what the fills left
        assert not any(node.trader.ledger.net.values())
    finally:
        node.close()

    restarted = make_node(_config(), live_venue, journal)
    try:
        restarted.start()
        summary = restarted.run()
        assert not summary["stopped"]
        assert summary["diverged"] == []  # the replay re-made both flattens as they were sent
        assert restarted.trader is not None and restarted.trader.now_ns > stopped_at[0]  # traded on
        assert restarted.broker.positions() == {}
        assert _open_orders(restarted) == []
    finally:
        restarted.close()
