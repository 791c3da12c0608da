"""`OrderPipe` and `AlpacaBroker.submit_many`: a bar time's orders pipelined on one connection, against
the venue over loopback (and a raw socket server for the HTTP framing the venue does not use): the body
is what alpaca-py sends, the broker sees the orders in decision order, every request waits for the rate
limiter, answers lost with a dropped connection are sent again without a duplicate, refusals reject."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime

import orjson
import pytest
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)
from hybridtrader.credentials import LOCAL_KEY, LOCAL_SECRET
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.live.broker import AlpacaBroker
from hybridtrader.live.order_pipe import OrderPipe, order_body
from hybridtrader.market.timeconv import utc_ns
from hybridtrader.venue import Venue

T0 = utc_ns(datetime(2024, 1, 2, 15, 0, tzinfo=UTC))
UNLIMITED = [(1_000_000, 60.0)]


@pytest.mark.parametrize(
    ("request_", "alpaca"),
    [
        (OrderRequest("S00", "buy", 7.0), MarketOrderRequest),
        (OrderRequest("S01", "sell", 2.5, "limit", "gtc", limit_price=10.25), LimitOrderRequest),
        (OrderRequest("S02", "sell", 3.0, "stop", "day", stop_price=9.5), StopOrderRequest),
        (OrderRequest("S00", "buy", 1.0, "stop_limit", "gtc", 11.0, 10.5), StopLimitOrderRequest),
    ],
)
def test_order_body_is_what_alpaca_py_sends(request_: OrderRequest, alpaca: type) -> None:
    r = request_
    prices = {
        k: v for k, v in (("limit_price", r.limit_price), ("stop_price", r.stop_price)) if v is not None
    }
    model = alpaca(
        symbol=r.symbol,
        qty=r.qty,
        side=r.side,
        time_in_force=r.time_in_force,
        client_order_id="ht-1",
        **prices,
    )
    # requests serialises alpaca-py's fields with json (its enums are str subclasses)
    assert orjson.loads(order_body("ht-1", r)) == json.loads(json.dumps(model.to_request_fields()))


def _broker(venue: Venue, rates: list[tuple[int, float]] = UNLIMITED) -> AlpacaBroker:
    return AlpacaBroker(venue.url, None, (LOCAL_KEY, LOCAL_SECRET), limiter=RateLimiter(rates=rates))


def test_a_bar_time_reaches_the_broker_in_decision_order_in_one_write(live_venue: Venue) -> None:
    live_venue.clock.advance_to(T0)
    b = _broker(live_venue)
    try:
        orders = [(f"ht-{i}", OrderRequest(f"S0{i % 3}", "buy", 1.0 + i), T0) for i in range(12)]
        answers = b.submit_many(orders)
        assert [a.status for a in answers] == [200] * 12
        assert len({a.sent for a in answers}) == 1  # one write carried them all
        assert answers[0].sent <= answers[0].answered <= answers[-1].answered
        venue_orders = list(live_venue.broker.orders.values())
        assert [o.client_order_id for o in venue_orders] == [cid for cid, _, _ in orders]
        assert [o.qty for o in venue_orders] == [r.qty for _, r, _ in orders]
        assert {cid: str(live_venue.broker.by_client_id[cid]) for cid, _, _ in orders} == b._ids
        b.submit_many(
            [(f"ht-x{i}", OrderRequest("S01", "sell", 1.0), T0) for i in range(3)]
        )  # same connection
        assert len(live_venue.broker.orders) == 15
    finally:
        b.close()


def test_every_request_waits_for_the_rate_limiter(live_venue: Venue) -> None:
    live_venue.clock.advance_to(T0)
    b = _broker(live_venue, rates=[(3, 0.5)])
    try:
        answers = b.submit_many([(f"ht-{i}", OrderRequest("S00", "buy", 1.0), T0) for i in range(7)])
        sent = [a.sent for a in answers]
        assert [a.status for a in answers] == [200] * 7
        assert len(set(sent[:3])) == 1  # the budget's burst leaves at once
        # never a 4th in a 0.5 s window (the stamps follow the limiter's admissions by a little)
        assert all(sent[i] - sent[i - 3] > 0.5 - 0.1 for i in range(3, 7))
        assert b.limiter.stats()["admitted"] == 7
        assert list(live_venue.broker.by_client_id) == [f"ht-{i}" for i in range(7)]
    finally:
        b.close()


def test_a_connection_dropped_mid_batch_loses_no_order_and_doubles_none(live_venue: Venue) -> None:
    live_venue.clock.advance_to(T0)
    b = _broker(live_venue)
    try:
        b.pipe.open()
        live_venue.set_faults(http_drop_burst=1)  # the first request's connection is cut without an answer
        answers = b.submit_many([(f"ht-{i}", OrderRequest("S00", "buy", 1.0), T0) for i in range(5)])
        live_venue.clear_faults()
        assert answers[0].status == 0  # the pipe lost it; alpaca-py's path sent it (and the rest) again
        assert sorted(live_venue.broker.by_client_id) == [f"ht-{i}" for i in range(5)]
        assert set(b._ids) == {f"ht-{i}" for i in range(5)}
    finally:
        b.close()


def test_a_refused_order_is_rejected_and_the_rest_go_on(live_venue: Venue) -> None:
    live_venue.clock.advance_to(T0)
    b = _broker(live_venue)
    try:
        orders = [
            ("ht-a", OrderRequest("S00", "buy", 1.0), T0),
            ("ht-b", OrderRequest("NOPE", "buy", 1.0), T0),
            ("ht-c", OrderRequest("S01", "buy", 1.0), T0),
        ]
        answers = b.submit_many(orders)
        assert [a.status for a in answers] == [200, 422, 200]
        rejected = [u for u in b.poll(T0) if u.kind == "rejected"]
        assert [(u.client_order_id, bool(u.reason)) for u in rejected] == [("ht-b", True)]
        assert sorted(live_venue.broker.by_client_id) == ["ht-a", "ht-c"]
    finally:
        b.close()


def _serve(answers: bytes, requests_expected: int, got: list[bytes]) -> tuple[str, threading.Thread]:
    """A one-connection HTTP server on a real socket: reads `requests_expected` requests (pipelined),
    then writes `answers` as given (byte-exact framing) and closes."""
    server = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        conn, _ = server.accept()
        data = b""
        while data.count(b"\r\n\r\n") < requests_expected or not data.endswith(b"}"):
            data += conn.recv(65536)
        got.append(data)
        conn.sendall(answers)
        conn.close()
        server.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/base", t


def test_chunked_answers_and_a_server_that_closes_are_read_right() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"id"\r\n8;ext=1\r\n: "o-1"}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    closing = b'HTTP/1.1 422 Unprocessable\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{"message":"x"}'
    got: list[bytes] = []
    url, t = _serve(chunked + closing, 3, got)
    pipe = OrderPipe(url, ("key-id", "secret"), RateLimiter(rates=UNLIMITED))
    bodies = [order_body(f"ht-{i}", OrderRequest("S00", "buy", 1.0)) for i in range(3)]
    answers = pipe.submit(bodies)
    t.join(5)
    assert [(a.status, a.body) for a in answers] == [
        (200, b'{"id": "o-1"}'),
        (422, b'{"message":"x"}'),
        (0, b""),
    ]
    assert got[0].count(b"POST /base/v2/orders HTTP/1.1\r\n") == 3 and b"APCA-API-KEY-ID: key-id" in got[0]
    assert "secret" not in repr(pipe) and "key-id" not in repr(pipe)
