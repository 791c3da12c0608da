"""The earnings calendar expiring mid-session while it cannot be reached: the node does not crash; it
trades on the dates it fetched before (stale), with one alert, to the end of the session."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from hybridtrader.config import Config, with_overrides
from hybridtrader.live.node import LiveNode
from hybridtrader.market.calendar import session_bounds
from hybridtrader.market.timeconv import utc_ns
from hybridtrader.venue import Venue

HAND_ENTRIES = Path(__file__).with_name("hand_entries.py")  # a sized entry at 15:40 New York


def _closed_port_url() -> str:
    """A loopback URL nothing listens on (connections refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1"


def test_an_expired_calendar_that_cannot_be_refreshed_mid_session_is_used_stale(
    live_venue: Venue, fast_retry_config: Config, make_node, tmp_path: Path
) -> None:
    cfg = with_overrides(
        fast_retry_config,
        [f"live.strategies=['{HAND_ENTRIES}:HandEntries']", "data.earnings_ttl_s=0.001"],  # expired at once
    )
    cut: list[int] = []

    def on_bar_time(node: LiveNode) -> None:
        assert node.trader is not None and node.earnings is not None
        if node.trader.n_bars // len(node.symbols) == 60:  # the calendar goes away mid-session
            node.earnings.url = _closed_port_url()
            cut.append(node.trader.now_ns)

    node = make_node(cfg, live_venue, tmp_path / "j.sqlite", stop=threading.Event(), on_bar_time=on_bar_time)
    try:
        node.start()
        summary = node.run()
        events = node.journal.events()
    finally:
        node.close()
    close = utc_ns(session_bounds(node.sessions[0])[1])
    assert not summary["stopped"] and node.trader is not None and node.trader.now_ns == close  # to the end
    stale = [m for _, kind, m in events if kind == "earnings_stale"]
    assert len(stale) == 1 and "stale" in stale[0], events
    # the entry after the calendar was cut went out (its blackout check used the stale dates)
    entries = node.result.orders.filter(node.result.orders["leg"].str.starts_with("entry"))
    after = entries.filter(entries["decision_ts"].dt.epoch("ns") > cut[0])
    assert after.height > 0
