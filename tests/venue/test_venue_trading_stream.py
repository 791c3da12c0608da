"""The venue's trading stream (`/stream`, trade_updates) heard through alpaca-py's own TradingStream over
loopback: new and fill events of a market order, canceled of a resting limit, replaced; bad keys refused."""

from __future__ import annotations

import asyncio
import queue
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
from hybridtrader.data.schema import utc_ns
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, Venue

T0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


def _listen(venue: Venue) -> tuple[TradingStream, queue.Queue[TradeUpdate]]:
    got: queue.Queue[TradeUpdate] = queue.Queue()
    stream = TradingStream(LOCAL_KEY, LOCAL_SECRET, url_override=venue.urls["alpaca_trading_stream"])

    async def handler(update: TradeUpdate) -> None:
        got.put(update)

    stream.subscribe_trade_updates(handler)
    threading.Thread(target=stream.run, daemon=True).start()
    return stream, got


def _wait_listening(venue: Venue, deadline_s: float = 10.0) -> None:
    """alpaca-py gives no 'subscribed' signal: wait until the venue has a listening socket."""
    tsd = next(r for r in venue.broker.listeners if hasattr(r, "__self__")).__self__
    end = time.monotonic() + deadline_s
    while not any(lst.listening for lst in tsd._listeners):
        assert time.monotonic() < end, "the trading stream never started listening"
        time.sleep(0.02)


def _next(got: queue.Queue[TradeUpdate]) -> TradeUpdate:
    return got.get(timeout=10)


def test_trade_updates_through_alpaca_py(fresh_venue: Venue) -> None:
    fresh_venue.clock.advance_to(utc_ns(T0))
    client = TradingClient(LOCAL_KEY, LOCAL_SECRET, url_override=fresh_venue.url)
    stream, got = _listen(fresh_venue)
    try:
        _wait_listening(fresh_venue)
        o = client.submit_order(MarketOrderRequest(symbol="S00", qty=3, side="buy", time_in_force="day"))
        events = [_next(got), _next(got)]
        assert [e.event for e in events] == ["new", "fill"]
        fill = events[1]
        assert fill.order.client_order_id == o.client_order_id
        assert fill.qty == 3 and fill.position_qty == 3
        # the fill price and time are the venue's own record of the order
        done = client.get_order_by_id(o.id)
        assert fill.price == float(done.filled_avg_price) and fill.timestamp == done.filled_at

        rest = client.submit_order(LimitOrderRequest(symbol="S00", qty=1, side="buy", time_in_force="day",
                                                     limit_price=1.0))
        assert _next(got).event == "new"
        new = client.replace_order_by_id(rest.id, ReplaceOrderRequest(limit_price=1.5,
                                                                      client_order_id="replacement-1"))
        kinds = {(_next(got).event, ) for _ in range(2)}
        assert kinds == {("replaced",), ("new",)}
        client.cancel_order_by_id(new.id)
        canceled = _next(got)
        assert canceled.event == "canceled" and canceled.order.client_order_id == "replacement-1"
    finally:
        stream.stop()


def test_fills_are_pushed_as_the_replay_clock_moves(fresh_venue: Venue) -> None:
    """A resting limit that becomes marketable later fills with no REST call: the stream's ticker syncs."""
    fresh_venue.clock.advance_to(utc_ns(T0))
    client = TradingClient(LOCAL_KEY, LOCAL_SECRET, url_override=fresh_venue.url)
    stream, got = _listen(fresh_venue)
    try:
        _wait_listening(fresh_venue)
        bid = fresh_venue.market.last_price("S00", utc_ns(T0))
        assert bid is not None
        client.submit_order(LimitOrderRequest(symbol="S00", qty=1, side="sell", time_in_force="day",
                                              limit_price=round(bid * 0.5, 2)))
        client.submit_order(LimitOrderRequest(symbol="S00", qty=1, side="buy", time_in_force="gtc",
                                              limit_price=round(bid * 0.5, 2)))
        first = [_next(got).event for _ in range(3)]
        assert sorted(first) == ["fill", "new", "new"]
        # the buy far below the market rests; the day's close expires nothing (gtc) but it stays silent
        fresh_venue.clock.advance_to(utc_ns(T0) + 3_600_000_000_000)
        with pytest.raises(queue.Empty):
            got.get(timeout=0.5)
    finally:
        stream.stop()


def test_bad_keys_are_unauthorized(fresh_venue: Venue) -> None:
    async def go() -> dict[str, object]:
        async with websockets.connect(fresh_venue.urls["alpaca_trading_stream"]) as ws:
            await ws.send(orjson.dumps({"action": "authenticate",
                                        "data": {"key_id": LOCAL_KEY, "secret_key": "wrong"}}).decode())
            return orjson.loads(await ws.recv())

    reply = asyncio.run(go())
    assert reply == {"stream": "authorization", "data": {"status": "unauthorized", "action": "authenticate"}}
