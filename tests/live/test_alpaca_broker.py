"""`AlpacaBroker` against the local venue over loopback (alpaca-py on both the REST and the stream side):
orders out, updates in as the engine's OrderUpdates, nothing reported twice, duplicates refused, lost
stream updates supplied by REST, 429 storms and 5xx bursts ridden out."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from helpers import MIN
from hybridtrader.config import Config
from hybridtrader.credentials import LOCAL_KEY, LOCAL_SECRET
from hybridtrader.engine.orders import Order, OrderRequest
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.live.broker import AlpacaBroker
from hybridtrader.market.timeconv import utc_ns
from hybridtrader.venue import Venue

T0 = utc_ns(datetime(2024, 1, 2, 15, 0, tzinfo=UTC))


def _broker(venue: Venue, config: Config | None = None, stream: bool = True) -> AlpacaBroker:
    b = AlpacaBroker(
        venue.url,
        venue.urls["alpaca_trading_stream"] if stream else None,
        (LOCAL_KEY, LOCAL_SECRET),
        limiter=RateLimiter(config or Config()),
    )
    b.connect()
    return b


def _poll_until(b: AlpacaBroker, now: int, n: int, timeout_s: float = 10.0) -> list:
    got: list = []
    end = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < end:
        got += b.poll(now)
        time.sleep(0.02)
    return got


def test_market_order_acked_and_filled_once(live_venue: Venue) -> None:
    live_venue.clock.advance_to(T0)
    b = _broker(live_venue)
    try:
        b.submit("ht-a", OrderRequest("S00", "buy", 7.0), T0)
        got = _poll_until(b, T0, 2)
        assert [u.kind for u in got] == ["accepted", "fill"]
        fill = got[1]
        venue_order = live_venue.broker.orders[live_venue.broker.by_client_id["ht-a"]]
        assert fill.qty == 7.0 and fill.filled_qty == 7.0 and fill.leaves_qty == 0.0
        assert fill.price == venue_order.filled_notional / venue_order.filled_qty
        # the engine's state machine takes the sequence as it is
        order = Order("ht-a", "s", "intraday", "entry", OrderRequest("S00", "buy", 7.0), T0, fill.price, 0.0)
        for u in got:
            order.apply(u)
        assert order.status == "filled"
        live_venue.clock.advance_to(T0 + MIN)
        assert b.poll(T0 + MIN) == []  # nothing twice, from the stream nor from REST
        assert b.positions() == {"S00": 7.0}
        # the same intent sent again (a restart re-deciding it) does not trade twice
        b.submit("ht-a", OrderRequest("S00", "buy", 7.0), T0)
        assert len(live_venue.broker.orders) == 1 and b.positions() == {"S00": 7.0}
        assert [(u.kind, u.qty) for u in b.history(T0 - MIN)] == [("accepted", 0.0), ("fill", 7.0)]
    finally:
        b.close()


def test_updates_lost_by_the_stream_come_from_rest(live_venue: Venue) -> None:
    live_venue.clock.advance_to(T0)
    b = _broker(live_venue, stream=False)  # as if every trade_updates message were lost
    try:
        bid = live_venue.market.last_price("S01", T0)
        assert bid is not None
        b.submit("ht-r", OrderRequest("S01", "buy", 3.0, "limit", "day", limit_price=round(bid * 0.5, 2)), T0)
        b.submit("ht-m", OrderRequest("S01", "buy", 2.0), T0)
        assert [(u.client_order_id, u.kind) for u in b.poll(T0)] == [
            ("ht-r", "accepted"),
            ("ht-m", "accepted"),
            ("ht-m", "fill"),
        ]
        b.cancel("ht-r", T0 + MIN)
        live_venue.clock.advance_to(T0 + MIN)
        assert [(u.client_order_id, u.kind) for u in b.poll(T0 + MIN)] == [("ht-r", "canceled")]
        assert not b.has_open_orders() and b.recovered == 4
    finally:
        b.close()


def test_a_429_storm_and_5xx_burst_are_ridden_out(live_venue: Venue, fast_retry_config: Config) -> None:
    live_venue.clock.advance_to(T0)
    b = _broker(live_venue, fast_retry_config)
    try:
        live_venue.set_faults(http_429_burst=6, http_5xx_burst=4, http_429_reset_s=0.05)
        b.submit("ht-s", OrderRequest("S02", "sell", 5.0), T0)
        got = _poll_until(b, T0, 2)
        assert [u.kind for u in got] == ["accepted", "fill"]
        assert len(live_venue.broker.orders) == 1
        assert b.limiter.stats()["retries"] >= 10
    finally:
        live_venue.clear_faults()
        b.close()


def test_a_submit_that_never_reached_the_broker_is_resolved_as_rejected(
    live_venue: Venue, fast_retry_config: Config
) -> None:
    live_venue.clock.advance_to(T0)
    fast_retry_config.execution.backoff.max_retries = 1
    b = _broker(live_venue, fast_retry_config, stream=False)
    try:
        live_venue.set_faults(http_5xx_burst=2)  # the submit and its one retry fail
        b.submit("ht-x", OrderRequest("S00", "buy", 1.0), T0)
        live_venue.clear_faults()
        (u,) = b.poll(T0)
        assert (u.client_order_id, u.kind, u.reason) == ("ht-x", "rejected", "never reached the broker")
        assert live_venue.broker.orders == {}
    finally:
        b.close()


@pytest.mark.parametrize("kind", ["stop", "stop_limit"])
def test_stop_orders_are_sent_with_their_prices(live_venue: Venue, kind: str) -> None:
    live_venue.clock.advance_to(T0)
    b = _broker(live_venue, stream=False)
    try:
        limit = 1.0 if kind == "stop_limit" else None
        b.submit(
            "ht-stop", OrderRequest("S00", "sell", 1.0, kind, "gtc", limit_price=limit, stop_price=1.5), T0
        )
        o = live_venue.broker.orders[live_venue.broker.by_client_id["ht-stop"]]
        assert (o.type, o.stop_price, o.limit_price) == (kind, 1.5, limit)
        assert [u.kind for u in b.poll(T0)] == ["accepted"]
    finally:
        b.close()


def test_order_pages_overlap_where_many_orders_share_a_time(live_venue: Venue) -> None:
    """A page (Alpaca: 500 orders at most; 50 here) may end among orders of one bar time, which share
    their creation time: the next page starts a microsecond before the last one, so none is lost."""
    live_venue.clock.advance_to(T0)
    b = _broker(live_venue, stream=False)
    b.page_size = 50
    try:
        for i in range(45):
            b.submit(f"ht-{i}", OrderRequest("S00", "buy", 1.0, "limit", "gtc", limit_price=0.5), T0)
        live_venue.clock.advance_to(T0 + MIN)
        for i in range(45, 55):  # the page ends after 5 of these
            b.submit(f"ht-{i}", OrderRequest("S00", "buy", 1.0, "limit", "gtc", limit_price=0.5), T0 + MIN)
        orders = b.orders(T0)
        assert sorted(o.client_order_id for o in orders) == sorted(f"ht-{i}" for i in range(55))
        assert len(b.history(T0)) == 55  # one "accepted" each
    finally:
        b.close()


def test_an_unreadable_stream_message_is_one_warning_and_loses_nothing(
    live_venue: Venue, caplog: pytest.LogCaptureFixture
) -> None:
    live_venue.clock.advance_to(T0)
    b = _broker(live_venue)
    try:
        # what the stream's thread queues for the node's poll: a trade_updates message without its order
        b._inbox.put({"event": "fill", "timestamp": "2024-01-02T15:00:00Z"})
        b.submit("ht-u", OrderRequest("S02", "buy", 4.0), T0)
        got = _poll_until(b, T0, 2)
        assert [(u.client_order_id, u.kind, u.qty) for u in got] == [
            ("ht-u", "accepted", 0.0),
            ("ht-u", "fill", 4.0),
        ]
        unreadable = [r for r in caplog.records if "unreadable message" in r.getMessage()]
        assert len(unreadable) == 1 and "'order'" in unreadable[0].getMessage()
    finally:
        b.close()
