"""A cancel the Trader decides in a bar time leaves after that bar time's orders: the node trades the venue
through a TCP relay that notes each request line as it arrives (order ids of `POST /v2/orders`, the
broker ids of `DELETE /v2/orders/{id}`). A strategy rests a limit buy far below the market, and a bar
time later cancels it and then decides a market buy: the buy reaches the broker before the cancel, and
both end as the Trader decided (the limit order canceled, the buy filled)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import polars as pl
from helpers import LoopbackRelay
from hybridtrader.cli.live_cmd import _sessions_from
from hybridtrader.config import Config, with_overrides
from hybridtrader.credentials import LOCAL_KEY, LOCAL_SECRET
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.live.journal import Journal
from hybridtrader.live.node import Endpoints, LiveNode
from hybridtrader.strategy import Context, Strategy
from hybridtrader.venue import Venue

REQUEST = re.compile(rb"(POST|DELETE) /v2/orders(/[^ ?]+)? HTTP/1\.1\r\n")
ORDER_ID = re.compile(rb'"client_order_id":\s*"([^"]+)"')


class RequestLog(LoopbackRelay):
    """Relays TCP to `target` and notes, in arrival order, ("POST", client order id) of each order sent and
    ("DELETE", broker order id) of each cancel."""

    def __init__(self, target: tuple[str, int]) -> None:
        super().__init__(target, self._note)
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()  # one relay thread per connection: the order pipe's, alpaca-py's

    def _note(self, data: bytes) -> None:
        with self._lock:
            ids = iter(ORDER_ID.findall(data))
            for m in REQUEST.finditer(data):
                if m[1] == b"POST":
                    self.seen.append(("POST", next(ids).decode()))
                else:
                    self.seen.append(("DELETE", m[2].decode().strip("/")))


class RestThenSwap(Strategy):
    """Bar time 3 of the run: a limit buy of S00 at half its price (it rests). Bar time 4: cancel it, then
    a market buy of S01."""

    name = "rest_then_swap"
    book = "intraday"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.bar_times = 0
        self.resting: str | None = None
        self.buy: str | None = None

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        self.bar_times += 1
        if self.bar_times == 3:
            limit = round(ctx.price("S00") * 0.5, 2)
            self.resting = ctx.submit(OrderRequest("S00", "buy", 5.0, "limit", "day", limit_price=limit))
        elif self.bar_times == 4:
            assert self.resting is not None
            ctx.cancel(self.resting)
            self.buy = ctx.submit(OrderRequest("S01", "buy", 5.0))


def test_a_bar_time_cancel_leaves_after_its_orders(live_venue: Venue, tmp_path: Path) -> None:
    cfg = with_overrides(Config(data_dir=tmp_path), ["live.use_models=false", "live.flatten_on_exit=false"])
    host, port = live_venue.url.removeprefix("http://").split(":")
    relay = RequestLog((host, int(port)))
    base = live_venue.url
    ws = base.replace("http://", "ws://") + "/stream"
    ep = Endpoints(relay.url, ws, base, base, (LOCAL_KEY, LOCAL_SECRET))
    strategy = RestThenSwap(cfg)
    stop = threading.Event()
    node = LiveNode(
        cfg,
        ep,
        sessions=_sessions_from(live_venue.clock.now_ns(), 1),
        symbols=live_venue.market.names,
        journal=Journal(tmp_path / "j.sqlite"),
        stop=stop,
        on_bar_time=lambda n: stop.set() if strategy.bar_times >= 6 else None,
        limiter=RateLimiter(cfg, rates=[(10**9, 60.0)]),
        strategies=[strategy],
    )
    try:
        node.start()
        node.run()
        broker_id = node.broker._ids[strategy.resting or ""]
    finally:
        node.close()
        relay.close()
    assert node.result is not None
    status = dict(node.result.orders.select("client_order_id", "status").iter_rows())
    assert status == {strategy.resting: "canceled", strategy.buy: "filled"}
    assert [s for s in relay.seen if s[0] == "DELETE" or s[1] in status] == [
        ("POST", strategy.resting),
        ("POST", strategy.buy),
        ("DELETE", broker_id),
    ]
