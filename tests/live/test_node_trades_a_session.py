"""The live node trading one session of the local venue over loopback (REST, trade_updates, journal), the
way `hybridtrader run` trades its last session, with entries decided by hand (tests/live/hand_entries.py):
the toxic-time filter, time slicing, the end-of-day flatten, and orders and fills as the venue holds them.
A trading-API refusal is one BrokerError line."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest
from hybridtrader.cli.live_cmd import _sessions_from, venue_endpoints
from hybridtrader.config import Config, with_overrides
from hybridtrader.errors import BrokerError
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.live.journal import Journal
from hybridtrader.live.node import Endpoints, LiveNode
from hybridtrader.market.calendar import NEW_YORK
from hybridtrader.market.timeframe import Timeframe
from hybridtrader.venue import Venue

HAND_ENTRIES = Path(__file__).with_name("hand_entries.py")


def _node(cfg: Config, venue: Venue, journal: Path, endpoints: Endpoints | None = None) -> LiveNode:
    return LiveNode(
        cfg,
        endpoints or venue_endpoints(cfg, venue.url),
        sessions=_sessions_from(venue.clock.now_ns(), 1),
        symbols=venue.market.names,
        journal=Journal(journal),
        stop=threading.Event(),
        limiter=RateLimiter(cfg, rates=[(1_000_000, 60.0)]),
    )


def test_node_filters_slices_flattens_and_books_what_the_venue_filled(
    live_venue: Venue, tmp_path: Path
) -> None:
    # the slippage model starts calibrated on the replayed daily bars (ADV: the slicing's participation cap)
    state = tmp_path / "slippage.json"
    model = SlippageModel(None)
    model.learn_from_daily_bars(live_venue.market.bars(Timeframe(1, "Day")).frame)
    model.save(state)
    cfg = with_overrides(
        Config(),
        [f"live.strategies=['{HAND_ENTRIES}:HandEntries']", f"execution.slippage.state_path={state}"],
    )
    node = _node(cfg, live_venue, tmp_path / "j.sqlite")
    try:
        node.start()
        summary = node.run()
        trader = node.trader
        assert trader is not None
        venue_orders = {o.client_order_id: o for o in live_venue.broker.orders.values()}
        intents = set(node.journal.intents())
        learned = trader.slippage.symbol_params("S00")["n_fills"]
    finally:
        node.close()
    result = node.result

    # 09:35 is within the first 15 minutes of the session: refused; 15:40 is traded
    assert result.skipped == {"toxic time: within the first 15 minutes": 1}
    o = result.orders
    # slicing: 6 children over 15:40..16:00 (the 30-minute window is cut at the close), each sent at the
    # first bar time at or after it is due; the flatten at 15:55 drops the last (due 15:56:40)
    entries = o.filter(pl.col("leg").str.starts_with("entry"))
    assert entries["leg"].to_list() == [f"entry.{k}" for k in range(5)]
    sent_at = [t.astimezone(NEW_YORK).strftime("%H:%M") for t in entries["decision_ts"]]
    assert sent_at == ["15:40", "15:44", "15:47", "15:50", "15:54"]
    day = node.sessions[0]
    assert result.events == [f"{day} 15:55 New York, end of day: 1 positions closed, 0 orders canceled"]
    flatten = o.filter(pl.col("leg") == "flatten")
    assert flatten.height == 1 and flatten["side"].item() == "sell"
    assert flatten["filled_qty"].item() == entries["filled_qty"].sum() > 0
    # every order was journaled before it was sent, and is booked as the venue filled it
    assert set(o["client_order_id"]) == intents == set(venue_orders)
    for row in o.iter_rows(named=True):
        v = venue_orders[row["client_order_id"]]
        assert row["filled_qty"] == v.filled_qty
        assert row["avg_price"] == pytest.approx(v.filled_notional / v.filled_qty)
        sign = 1.0 if row["side"] == "buy" else -1.0
        shortfall = sign * (row["avg_price"] / row["decision_price"] - 1.0) * 1e4
        assert row["realized_bps"] == pytest.approx(shortfall)
    assert result.fills["qty"].sum() == o["filled_qty"].sum()
    # the slippage model learned from each fill; the account is flat after the close
    assert learned == result.fills.height
    assert summary["broker_positions"] == {} and result.positions["qty"].abs().sum() == 0


def test_a_refused_trading_call_is_one_broker_error_line(live_venue: Venue, tmp_path: Path) -> None:
    """Keys the venue does not know: the node's first call (the account) is refused, and that reaches the
    caller as one BrokerError line naming the call and the status, not as alpaca-py's APIError."""
    cfg = Config()
    good = venue_endpoints(cfg, live_venue.url)
    bad = Endpoints(good.trading_url, good.trading_stream_url, good.data_url, good.venue_url,
                    ("not-a-key", "not-a-secret"))  # fmt: skip
    with pytest.raises(BrokerError) as e:
        _node(cfg, live_venue, tmp_path / "j.sqlite", bad)
    text = str(e.value)
    assert "\n" not in text and "get_account" in text and "not-a-secret" not in text
