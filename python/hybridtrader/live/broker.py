"""`AlpacaBroker`: the engine's Broker port on Alpaca through alpaca-py (the paper/live account, or the
local venue, which speaks the same API).

- Orders go out through the REST `TradingClient`, each call under our `RateLimiter` (it waits as the
  server's X-RateLimit-Reset says and retries 429/5xx/dropped connections; alpaca-py's own blind retry is
  switched off). A retried submit cannot trade twice: the client order id is deterministic, so a submit
  the broker already took is refused as a duplicate and looked up instead. A bar time's orders leave
  together on the `OrderPipe` (`submit_many`); what it gets no usable answer for takes that path.
- Updates come from the trading stream (`trade_updates`, alpaca-py `TradingStream` on a thread of its
  own) as they happen. That thread only queues each message's JSON (alpaca-py's `raw_data`): alpaca-py's
  pydantic model of it costs ~30 us of CPU, holding the GIL, per message (a bar time brings dozens), and
  the node's thread reads the few fields it needs when it polls. A stream can lose messages (a dropped
  socket loses what was in flight), so for orders still open `poll` asks REST for the truth (orders and
  FILL activities) and makes up what the stream did not say. Every update is reported once: fills are
  deduplicated by the cumulative filled quantity, other events by kind.
- `history(after_ns)` rebuilds every order's updates from REST alone: a restarted node replays them.

Alpaca reports no per-fill fee on the stream (commission-free; the SEC/TAF fees show up later as account
activities), so each fill is charged by the fee rule given (`fees`: the fill simulator's own rule on the
configured `execution.fills` costs: commission, and SEC fee + TAF on sells), and the ledger and journal
carry the fees the backtest would charge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import polars as pl
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)
from alpaca.trading.stream import TradingStream

from hybridtrader.engine.events import OrderUpdate
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.errors import BrokerError
from hybridtrader.execution.fills import FillSimulator
from hybridtrader.execution.rate_limiter import RateLimiter, RateLimitError
from hybridtrader.live.order_pipe import Answer, OrderPipe, order_body
from hybridtrader.market.timeconv import NS_PER_MINUTE, from_utc_ns, rfc3339, to_utc, utc_ns

log = logging.getLogger(__name__)

# Alpaca's trade_updates events -> the engine's update kinds (others, e.g. pending_new, say nothing new)
_KINDS = {
    "new": "accepted",
    "accepted": "accepted",
    "partial_fill": "partial_fill",
    "fill": "fill",
    "canceled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
    "replaced": "replaced",
}
_CLOSED = frozenset({"filled", "canceled", "expired", "rejected", "replaced"})
_EPS = 1e-9
# REST look-ups for orders sent at t ask for orders created after t minus this (clocks may differ)
REST_LOOKBACK_NS = NS_PER_MINUTE
# `poll(settle_s=...)`: the stream is taken as done delivering after this long without a message
STREAM_QUIET_S = 0.002


def ns(t: datetime | str | None) -> int:
    """UTC epoch ns of an Alpaca timestamp (0 for None)."""
    return 0 if t is None else utc_ns(to_utc("timestamp", t))


def update_order(u: OrderUpdate) -> tuple[int, int]:
    """The sort key of updates reported together: time order, an order's acknowledgement before the fills
    of its time."""
    return u.ts_ns, 0 if u.kind == "accepted" else 1


@dataclass
class _Seen:
    """What has been reported about one order: kinds, cumulative fill quantity and notional."""

    symbol: str
    side: str
    qty: float
    kinds: set[str] = field(default_factory=set)
    filled: float = 0.0
    notional: float = 0.0

    @property
    def closed(self) -> bool:
        return bool(self.kinds & {"fill", "canceled", "expired", "rejected", "replaced"})


class AlpacaBroker:
    """Broker port over alpaca-py. `connect()` starts the trading stream; `close()` stops it."""

    def __init__(
        self,
        trading_url: str,
        stream_url: str | None,
        keys: tuple[str, str],
        *,
        limiter: RateLimiter | None = None,
        paper: bool = True,
        on_request: Callable[[str, float], None] | None = None,
        fees: FillSimulator | None = None,
    ) -> None:
        """`fees`: whose `fill_fee` charges each fill (None: fills carry the fee the broker reports)."""
        key, secret = keys
        self.fees = fees
        self.trading_url, self.stream_url = trading_url, stream_url
        self.client = TradingClient(key, secret, paper=paper, url_override=trading_url)
        self.client._retry = 0  # our limiter retries, reading the server's reset hints
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.pipe = OrderPipe(trading_url, keys, self.limiter)  # a bar time's orders at once
        self._stream = (
            TradingStream(key, secret, paper=paper, raw_data=True, url_override=stream_url)
            if stream_url
            else None
        )
        self._thread: threading.Thread | None = None
        # the stream's messages (their "data": JSON as received) and the rejections made here, in order
        self._inbox: queue.SimpleQueue[dict[str, Any] | OrderUpdate] = queue.SimpleQueue()
        self._seen: dict[str, _Seen] = {}
        self._open: dict[str, None] = {}  # the orders of `_seen` not closed (insertion-ordered set)
        self._ids: dict[str, str] = {}  # client order id -> broker order id
        self._sent_ns: dict[str, int] = {}  # client order id -> when it was sent (our clock)
        self.on_request = on_request  # (endpoint name, seconds) after each REST call, for metrics
        self.stream_messages = 0
        self.recovered = 0  # updates the stream had not delivered when REST was asked
        self._held: list[OrderUpdate] = []
        self._unconfirmed: set[str] = set()  # submits that failed without an answer
        self.page_size = 500  # orders per REST page (Alpaca's maximum)

    def __repr__(self) -> str:  # the keys stay out of logs and errors
        return f"AlpacaBroker(trading_url={self.trading_url!r}, stream_url={self.stream_url!r})"

    # ----------------------------------------------------------------------------------- plumbing
    def _call(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.limiter.call(fn, args, retry_transient=True)
        except RateLimitError as e:
            raise BrokerError(f"{name} at {self.trading_url}: gave up after retries: {e}") from e
        finally:
            if self.on_request is not None:
                self.on_request(name, time.perf_counter() - t0)

    def _read(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """A call whose refusal nothing can work around (unknown keys, a forbidden account): one
        BrokerError line naming the call and the status, not alpaca-py's APIError."""
        try:
            return self._call(name, fn, *args)
        except APIError as e:
            status = e.status_code or "an error"
            raise BrokerError(f"{name} at {self.trading_url}: answered {status}: {_message(e)}") from e

    def connect(self) -> None:
        """Open the order pipe and start listening to trade_updates (on a daemon thread with its own
        event loop)."""
        try:
            self.pipe.open()
        except OSError as e:  # the first batch tries again
            log.warning("order connection to %s: %s", self.trading_url, e)
        if self._stream is None or self._thread is not None:
            return

        async def handler(message: dict[str, Any]) -> None:  # on the stream's thread: queued as it came
            self.stream_messages += 1
            self._inbox.put(message["data"])

        self._stream.subscribe_trade_updates(handler)
        self._thread = threading.Thread(target=self._stream.run, name="alpaca-trade-updates", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.pipe.close()
        stream, thread = self._stream, self._thread
        if stream is not None and thread is not None:
            loop = getattr(stream, "_loop", None)
            # alpaca-py reads its stop request between reads, and a read waits up to 5 s for a message:
            # closing the socket ends the read now (alpaca-py warns of it as of a dropped connection, which
            # it is not: quiet while the thread ends)
            quiet = logging.getLogger("alpaca.trading.stream")
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                if loop is not None and loop.is_running():
                    with contextlib.suppress(RuntimeError, TimeoutError):  # the loop ended meanwhile
                        stream.stop()
                        asyncio.run_coroutine_threadsafe(stream.close(), loop).result(timeout=2)
                thread.join(timeout=5)
            finally:
                quiet.setLevel(level)
        self._thread = None

    # -------------------------------------------------------------------------------------- orders
    def submit(self, client_order_id: str, request: OrderRequest, ts_ns: int) -> None:
        """Send one order through alpaca-py (the limiter retries 429/5xx/dropped connections)."""
        self._expect(client_order_id, request, ts_ns)
        self._submit_client(client_order_id, request, ts_ns)

    def submit_many(self, orders: list[tuple[str, OrderRequest, int]]) -> list[Answer]:
        """Send a bar time's orders (client order id, request, decision ns) at once, in this order, on the
        order pipe; each answer is taken as `submit` takes it, and an order the pipe got no usable answer
        for (429, 5xx, connection lost) goes again through `submit`'s path. Each order's `Answer` carries
        when it left and when its answer came (perf_counter seconds)."""
        for cid, request, ts_ns in orders:
            self._expect(cid, request, ts_ns)
        answers = self.pipe.submit([order_body(cid, r) for cid, r, _ in orders])
        for (cid, request, ts_ns), a in zip(orders, answers, strict=True):
            if 200 <= a.status < 300:
                try:
                    self._ids[cid] = str(orjson.loads(a.body)["id"])
                except (orjson.JSONDecodeError, KeyError, TypeError):  # taken, says the status: look it up
                    self._refused(cid, request, ts_ns, a.status, f"unreadable answer {a.body[:80]!r}")
            elif a.status in (403, 422):
                self._refused(cid, request, ts_ns, a.status, _body_message(a.body))
            else:
                self._submit_client(cid, request, ts_ns)  # its calls report their own times
                a.answered = time.perf_counter()
                continue
            if self.on_request is not None:
                self.on_request("submit_order", a.answered - a.sent)
        return answers

    def _expect(self, client_order_id: str, request: OrderRequest, ts_ns: int) -> None:
        self._seen[client_order_id] = _Seen(request.symbol, request.side, request.qty)
        self._open[client_order_id] = None
        self._sent_ns[client_order_id] = ts_ns

    def _submit_client(self, client_order_id: str, request: OrderRequest, ts_ns: int) -> None:
        common: dict[str, Any] = dict(
            symbol=request.symbol,
            qty=request.qty,
            side=request.side,
            time_in_force=request.time_in_force,
            client_order_id=client_order_id,
        )
        if request.type == "market":
            req: Any = MarketOrderRequest(**common)
        elif request.type == "limit":
            req = LimitOrderRequest(**common, limit_price=request.limit_price)
        elif request.type == "stop":
            req = StopOrderRequest(**common, stop_price=request.stop_price)
        else:
            req = StopLimitOrderRequest(
                **common, limit_price=request.limit_price, stop_price=request.stop_price
            )
        try:
            order = self._call("submit_order", self.client.submit_order, req)
        except APIError as e:
            self._refused(client_order_id, request, ts_ns, e.status_code, _message(e))
            return
        except (BrokerError, OSError) as e:  # retries ran out: did it reach the broker? REST will say
            self._unconfirmed.add(client_order_id)
            log.warning("submit %s: %s; resolved by the next look-up", client_order_id, e)
            return
        self._ids[client_order_id] = str(order.id)

    def _refused(
        self, client_order_id: str, request: OrderRequest, ts_ns: int, status: int | None, message: str
    ) -> None:
        """A submit answered with an error: a retry of a submit the broker had taken is looked up; a 403/422
        is a rejection (the order never existed); anything else is resolved by the next look-up."""
        try:
            known = self.lookup(client_order_id)
        except BrokerError:
            known = None
        if known is not None:
            self._ids[client_order_id] = str(known.id)
        elif status in (403, 422):
            self._inbox.put(
                OrderUpdate(ts_ns, client_order_id, request.symbol, request.side, "rejected", reason=message)
            )
        else:
            self._unconfirmed.add(client_order_id)
            log.warning("submit %s: %s; resolved by the next look-up", client_order_id, message)

    def _order_id(self, client_order_id: str) -> str | None:
        """The broker's id of an order (None when it has none, or cannot be asked now)."""
        oid = self._ids.get(client_order_id)
        if oid is None:
            try:
                o = self.lookup(client_order_id)
            except (BrokerError, OSError) as e:
                log.warning("look up %s: %s", client_order_id, e)
                return None
            oid = None if o is None else str(o.id)
        return oid

    def cancel(self, client_order_id: str, ts_ns: int) -> None:
        oid = self._order_id(client_order_id)
        if oid is None:
            return
        try:
            self._call("cancel_order", self.client.cancel_order_by_id, oid)
        except APIError as e:
            if e.status_code not in (404, 422):  # 422: already filled/closed; the update says what
                log.warning("cancel %s: %s", client_order_id, _message(e))
        except (BrokerError, OSError) as e:  # the order stays open in our view until the broker says
            log.warning("cancel %s: %s", client_order_id, e)

    def replace(
        self,
        client_order_id: str,
        new_client_order_id: str,
        ts_ns: int,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
    ) -> None:
        old = self._seen.get(client_order_id)
        oid = self._order_id(client_order_id)
        symbol, side = (old.symbol, old.side) if old else ("", "")
        left = (old.qty - old.filled) if old else 0.0
        self._seen[new_client_order_id] = _Seen(symbol, side, qty if qty is not None else left)
        self._open[new_client_order_id] = None
        self._sent_ns[new_client_order_id] = ts_ns
        req = ReplaceOrderRequest(
            qty=None if qty is None else int(qty),
            limit_price=limit_price,
            stop_price=stop_price,
            client_order_id=new_client_order_id,
        )
        try:
            if oid is None:
                raise APIError('{"message": "order not found"}')
            order = self._call("replace_order", self.client.replace_order_by_id, oid, req)
            self._ids[new_client_order_id] = str(order.id)
        except APIError as e:
            known = self.lookup(new_client_order_id)
            if known is not None:
                self._ids[new_client_order_id] = str(known.id)
                return
            self._inbox.put(
                OrderUpdate(ts_ns, new_client_order_id, symbol, side, "rejected", reason=_message(e))
            )

    def lookup(self, client_order_id: str) -> AlpacaOrder | None:
        """The broker's order with this client order id, or None when it has none."""
        try:
            return self._call("get_order", self.client.get_order_by_client_id, client_order_id)
        except APIError as e:
            if e.status_code == 404:
                return None
            raise BrokerError(f"look up {client_order_id}: {_message(e)}") from e

    # ------------------------------------------------------------------------------------- updates
    def _from_stream(self, data: dict[str, Any]) -> OrderUpdate | None:
        """A `trade_updates` message's data (Alpaca's JSON: numbers may come as text) as an update; None for
        events that say nothing new (pending_new...)."""
        kind = _KINDS.get(str(data.get("event")))
        if kind is None:
            return None
        o = data["order"]
        filled = float(o.get("filled_qty") or 0.0)
        qty = float(o.get("qty") or 0.0)
        return OrderUpdate(
            ns(data.get("timestamp")),
            o["client_order_id"],
            o.get("symbol") or "",
            o["side"],
            kind,
            float(data.get("qty") or 0.0),
            float(data.get("price") or 0.0),
            0.0,
            filled,
            max(qty - filled, 0.0),
            "" if kind != "replaced" else str(o.get("replaced_by") or ""),
        )

    def _take(self, item: dict[str, Any] | OrderUpdate) -> OrderUpdate | None:
        """An item of the inbox, if it says something new (`_fresh`)."""
        if isinstance(item, OrderUpdate):
            return self._fresh(item)
        try:
            u = self._from_stream(item)
        except (AttributeError, KeyError, TypeError, ValueError) as e:  # as if lost: the REST look-up tells
            log.warning("trade_updates: an unreadable message (%s): %.200r", e, item)
            return None
        return None if u is None else self._fresh(u)

    def _fresh(self, u: OrderUpdate) -> OrderUpdate | None:
        """`u` if it says something not reported yet about an order this broker sent, else None. A fill
        whose quantity is not what it adds to the cumulative fill (an earlier partial fill was lost) is
        left to REST, which knows each fill."""
        seen = self._seen.get(u.client_order_id)
        if seen is None:
            return None  # not ours (another process's order on the account)
        if u.is_fill:
            added = u.filled_qty - seen.filled
            if added <= _EPS or abs(added - u.qty) > _EPS:
                return None
            if self.fees is not None:
                u = u._replace(fee=self.fees.fill_fee(u.side, seen.filled, u.qty, u.price))
            seen.filled = u.filled_qty
            seen.notional += u.qty * u.price
            if u.kind == "fill":
                self._mark(u.client_order_id, seen, "fill")
            return u
        if u.kind in seen.kinds or seen.closed or (u.kind == "accepted" and seen.filled > 0):
            return None  # a repeat, or an ack after a fill (the fill already moved the order on)
        self._mark(u.client_order_id, seen, u.kind)
        return u

    def _mark(self, client_order_id: str, seen: _Seen, kind: str) -> None:
        """`kind` reported about the order; a closing kind takes it out of the open orders."""
        seen.kinds.add(kind)
        if seen.closed:
            self._open.pop(client_order_id, None)

    def poll(self, now_ns: int, look_up: bool = True, settle_s: float = 0.0) -> list[OrderUpdate]:
        """Stream updates received so far (`settle_s`: and those the stream still delivers, see `_settle`),
        then (`look_up`) REST's word on orders still open (what the stream lost or has not delivered
        yet), each reported once, in time order."""
        out = self._held + self._drain()
        if settle_s and self._thread is not None:
            out += self._settle(settle_s)
        open_since = [self._sent_ns.get(c, 0) for c in self._open]
        if open_since and look_up:
            try:
                history = self.history(max(min(open_since) - REST_LOOKBACK_NS, 0))
            except (BrokerError, APIError, OSError) as e:  # the broker is unreachable now: ask next time
                log.warning("order look-up failed, retried at the next poll: %s", e)
                history = None
            if history is not None:
                for u in history:
                    fresh = self._fresh(u)
                    if fresh is not None:
                        out.append(fresh)
                        self.recovered += 1
                known = {u.client_order_id for u in history}
                for cid in sorted(self._unconfirmed - known):  # a failed submit the broker never got
                    seen = self._seen[cid]
                    out.append(
                        OrderUpdate(
                            self._sent_ns[cid],
                            cid,
                            seen.symbol,
                            seen.side,
                            "rejected",
                            reason="never reached the broker",
                        )
                    )
                    self._mark(cid, seen, "rejected")
                self._unconfirmed.clear()
            out.extend(self._drain())
        out.sort(key=update_order)
        # what happened after `now_ns` waits for the poll at or after its time (as a simulator reports)
        self._held = [u for u in out if u.ts_ns > now_ns]
        return [u for u in out if u.ts_ns <= now_ns]

    def _settle(self, limit_s: float) -> list[OrderUpdate]:
        """Stream updates arriving while orders are open, until none came for STREAM_QUIET_S or `limit_s`
        has passed: after the local venue's clock moves, its fills are on the wire while the node asks
        (the clock's answer races them), and what the stream delivers now the REST look-up need not ask."""
        out: list[OrderUpdate] = []
        deadline = time.perf_counter() + limit_s
        while self._open:
            wait = min(STREAM_QUIET_S, deadline - time.perf_counter())
            if wait <= 0:
                break
            try:
                item = self._inbox.get(timeout=wait)
            except queue.Empty:
                break
            fresh = self._take(item)
            if fresh is not None:
                out.append(fresh)
        return out

    def _drain(self) -> list[OrderUpdate]:
        out = []
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return out
            fresh = self._take(item)
            if fresh is not None:
                out.append(fresh)

    def history(self, after_ns: int = 0) -> list[OrderUpdate]:
        """Every update of the account's orders submitted after `after_ns`, rebuilt from REST (orders and
        FILL activities), in time order: accepted at submission, each fill, then the terminal event."""
        orders = self.orders(after_ns)
        by_id = {str(o.id): o for o in orders}
        fills: dict[str, list[tuple[int, float, float]]] = {}
        for a in self.fill_activities(after_ns):
            oid = str(a["order_id"])
            if oid in by_id:
                fills.setdefault(oid, []).append(
                    (ns(a["transaction_time"]), float(a["qty"]), float(a["price"]))
                )
        out: list[OrderUpdate] = []
        for o in orders:
            cid, sym, side = o.client_order_id, o.symbol or "", str(getattr(o.side, "value", o.side))
            qty = float(o.qty or 0.0)
            status = str(getattr(o.status, "value", o.status))
            if status == "rejected":
                out.append(OrderUpdate(ns(o.failed_at or o.updated_at), cid, sym, side, "rejected"))
                continue
            out.append(
                OrderUpdate(ns(o.submitted_at or o.created_at), cid, sym, side, "accepted", leaves_qty=qty)
            )
            cum = 0.0
            for ts, q, px in sorted(fills.get(str(o.id), [])):
                cum += q
                kind = "fill" if cum >= qty - _EPS else "partial_fill"
                out.append(OrderUpdate(ts, cid, sym, side, kind, q, px, 0.0, cum, max(qty - cum, 0.0)))
            for kind, at in (
                ("canceled", o.canceled_at),
                ("expired", o.expired_at),
                ("replaced", o.replaced_at),
            ):
                if at is not None and status == kind:
                    reason = ""
                    if kind == "replaced" and o.replaced_by is not None:
                        new = by_id.get(str(o.replaced_by))
                        reason = new.client_order_id if new is not None else ""
                    out.append(
                        OrderUpdate(
                            ns(at),
                            cid,
                            sym,
                            side,
                            kind,
                            filled_qty=cum,
                            leaves_qty=max(qty - cum, 0.0),
                            reason=reason,
                        )
                    )
        out.sort(key=update_order)
        return out

    # ------------------------------------------------------------------------- account (reconcile)
    def orders(self, after_ns: int = 0, status: str = "all") -> list[AlpacaOrder]:
        """The account's orders created at or after `after_ns` (oldest first), paging through Alpaca's 500
        cap. Pages overlap by a microsecond (orders of one bar time share their creation time) and are
        deduplicated by id."""
        out: list[AlpacaOrder] = []
        ids: set[str] = set()
        after = after_ns - 1000  # `after` is exclusive, to the microsecond
        while True:
            req = GetOrdersRequest(
                status=QueryOrderStatus(status),
                limit=self.page_size,
                direction="asc",
                after=from_utc_ns(after) if after > 0 else None,
            )
            page = self._read("get_orders", self.client.get_orders, req)
            fresh = [o for o in page if str(o.id) not in ids]
            out.extend(fresh)
            ids.update(str(o.id) for o in fresh)
            if len(page) < self.page_size or not fresh:
                return out
            after = ns(page[-1].created_at) - 1000

    def fill_activities(self, after_ns: int = 0) -> list[dict[str, Any]]:
        """FILL account activities after `after_ns`, oldest first (paged by the last id)."""
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"direction": "asc", "page_size": 100}
        if after_ns > 0:
            params["after"] = rfc3339(after_ns - 1000)
        while True:
            page = self._read("get_activities", self.client.get, "/account/activities/FILL", dict(params))
            out.extend(page)
            if len(page) < 100:
                return out
            params["page_token"] = page[-1]["id"]

    def positions(self) -> dict[str, float]:
        return {p.symbol: float(p.qty) for p in self._read("get_positions", self.client.get_all_positions)}

    def shortability(self) -> pl.DataFrame:
        """(symbol, shortable) of every active asset (`GET /v2/assets`)."""
        assets = self._read("get_assets", self.client.get_all_assets)
        return pl.DataFrame(
            {"symbol": [a.symbol for a in assets], "shortable": [bool(a.shortable) for a in assets]}
        )

    def account(self) -> dict[str, float]:
        a = self._read("get_account", self.client.get_account)
        return {"cash": float(a.cash), "equity": float(a.equity)}

    def on_bars(
        self, bars: pl.DataFrame, every_ns: int, index: tuple[list[str], np.ndarray] | None = None
    ) -> None:
        return None  # the exchange matches

    def has_open_orders(self) -> bool:
        return bool(self._open)

    def adopt(self, requests: dict[str, tuple[OrderRequest, int]], updates: Iterable[OrderUpdate]) -> None:
        """Know orders sent before a restart (client order id -> (request, sent ns)) and what was
        reported about them (`updates`), so that none of it is reported again."""
        for cid, (r, sent) in requests.items():
            if cid not in self._seen:
                self._seen[cid] = _Seen(r.symbol, r.side, r.qty)
                self._open[cid] = None
            self._sent_ns.setdefault(cid, sent)
        for u in updates:
            self._fresh(u)


def _body_message(body: bytes) -> str:
    """Alpaca's error answer `{"code": ..., "message": ...}` as its message (the raw text otherwise)."""
    try:
        return str(orjson.loads(body)["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return body.decode(errors="replace")


def _message(e: APIError) -> str:
    try:
        return str(e.message)
    except (ValueError, KeyError, TypeError):
        return str(e)
