"""The venue's trading stream (`/stream`, trade_updates) driven by alpaca-py's own TradingStream: the order
updates arrive as the replay clock passes them and agree with the REST view of the same orders."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import orjson
import pytest
import websockets
from alpaca.trading.client import TradingClient
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest
from alpaca.trading.stream import TradingStream
from hybridtrader.market.timeconv import utc_ns
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, Venue

T0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


def _wait(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for trade updates")
        time.sleep(0.01)


def test_trade_updates_over_alpaca_py(fresh_venue: Venue) -> None:
    fresh_venue.clock.advance_to(utc_ns(T0))
    client = TradingClient(LOCAL_KEY, LOCAL_SECRET, url_override=fresh_venue.url)
    stream = TradingStream(LOCAL_KEY, LOCAL_SECRET, url_override=fresh_venue.urls["alpaca_trading_stream"])
    updates: list[TradeUpdate] = []

    async def on_update(u: TradeUpdate) -> None:
        updates.append(u)

    stream.subscribe_trade_updates(on_update)
    runner = threading.Thread(target=stream.run, daemon=True)
    runner.start()
    _wait(lambda: fresh_venue.broker.listeners != [])  # the stream listens to trade_updates
    try:
        big = client.submit_order(MarketOrderRequest(symbol="S00", qty=1500, side="buy", time_in_force="day",
                                                     client_order_id="big"))
        rest = client.submit_order(LimitOrderRequest(symbol="S02", qty=5, side="buy", time_in_force="gtc",
                                                     limit_price=1.0, client_order_id="rest"))
        new = client.replace_order_by_id(rest.id, ReplaceOrderRequest(limit_price=2.0,
                                                                      client_order_id="rest2"))
        client.cancel_order_by_id(new.id)
        fresh_venue.clock.advance_to(utc_ns(datetime(2024, 1, 2, 15, 5, tzinfo=UTC)))
        _wait(lambda: any(u.event == "fill" for u in updates))
    finally:
        stream.stop()
        runner.join(timeout=10)
    by = {}
    for u in updates:
        by.setdefault(u.order.client_order_id, []).append(u)
    big_events = [u.event for u in by["big"]]
    assert big_events[0] == "new" and big_events[-1] == "fill"
    assert set(big_events[1:-1]) == {"partial_fill"}
    fills = [u for u in by["big"] if u.event in ("fill", "partial_fill")]
    assert sum(u.qty for u in fills) == 1500 and fills[-1].position_qty == 1500
    done = client.get_order_by_id(big.id)
    assert fills[-1].order.filled_avg_price == done.filled_avg_price
    assert sum(u.qty * u.price for u in fills) / 1500 == pytest.approx(float(done.filled_avg_price))
    assert [u.event for u in by["rest"]] == ["new", "replaced"]
    assert by["rest"][-1].order.replaced_by == new.id
    assert [u.event for u in by["rest2"]] == ["new", "canceled"]


def test_stream_refuses_bad_keys(fresh_venue: Venue) -> None:
    async def run() -> dict:
        async with websockets.connect(fresh_venue.urls["alpaca_trading_stream"]) as ws:
            await ws.send(orjson.dumps({"action": "authenticate",
                                        "data": {"key_id": LOCAL_KEY, "secret_key": "wrong"}}))
            reply = orjson.loads(await ws.recv())
            await asyncio.wait_for(ws.wait_closed(), 5)
            return reply

    assert asyncio.run(run()) == {"stream": "authorization",
                                  "data": {"action": "authenticate", "status": "unauthorized"}}
