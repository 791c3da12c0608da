"""Alpaca Trading API v2 over the replayed market: account, clock, assets, orders, positions, activities.

Orders are matched by the shared fill simulator (`hybridtrader.execution.fills`, the backtest's too) against
the replayed quotes as the replay clock passes them; its docstring gives the rules (displayed size and
partial fills, limits, stops, time in force, auctions, impact from the slippage model, regulatory fees on
sells). The venue adds no latency of its own (the HTTP round trip and the replay clock are the latency)
and keeps what Alpaca's API shows around the simulator: order records, positions, cash, fill activities.
The broker is lazy: every request first brings it up to the clock's time, so fills are deterministic for a
given clock.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import orjson
import polars as pl
from aiohttp import web

from hybridtrader._core import FillSimulatorCore
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.market import calendar
from hybridtrader.market.schema import side_sign
from hybridtrader.market.timeconv import NS_PER_MS, NS_PER_SECOND, from_utc_ns, rfc3339, to_utc, utc_ns
from hybridtrader.venue.alpaca_data import ApiError
from hybridtrader.venue.market import ReplayMarket
from hybridtrader.venue.replay import ReplayClock

OPEN_STATES = ("new", "accepted", "partially_filled")
MARGIN_MULTIPLIER = 2.0
T1_SETTLEMENT = date(2024, 5, 28)  # US equities settle T+1 from this date, T+2 before


def not_found(what: str) -> ApiError:
    return ApiError(404, 40410000, f"{what} not found")


def unprocessable(message: str) -> ApiError:
    return ApiError(422, 40010001, message)


@dataclass
class Order:
    """What Alpaca shows of an order; the simulator's events keep it current."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    tif: str
    qty: float
    limit_price: float | None
    stop_price: float | None
    created_ns: int
    status: str = "pending_new"
    filled_qty: float = 0.0
    filled_notional: float = 0.0
    updated_ns: int = 0
    filled_ns: int | None = None
    canceled_ns: int | None = None
    expired_ns: int | None = None
    failed_ns: int | None = None
    replaced_ns: int | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    reason: str = ""  # why the simulator rejected it

    def json(self, asset_id: str) -> dict[str, Any]:
        avg = self.filled_notional / self.filled_qty if self.filled_qty else None

        def when(ns: int | None) -> str | None:
            return rfc3339(ns) if ns is not None else None

        def price(x: float | None) -> str | None:
            return _num(x) if x is not None else None

        created = rfc3339(self.created_ns)
        return {
            "id": self.id, "client_order_id": self.client_order_id,
            "created_at": created, "updated_at": rfc3339(self.updated_ns) if self.updated_ns else created,
            "submitted_at": created, "filled_at": when(self.filled_ns),
            "expired_at": when(self.expired_ns), "canceled_at": when(self.canceled_ns),
            "failed_at": when(self.failed_ns), "replaced_at": when(self.replaced_ns),
            "replaced_by": self.replaced_by, "replaces": self.replaces,
            "asset_id": asset_id, "symbol": self.symbol, "asset_class": "us_equity", "notional": None,
            "qty": _num(self.qty), "filled_qty": _num(self.filled_qty), "filled_avg_price": price(avg),
            "order_class": "simple", "order_type": self.type, "type": self.type, "side": self.side,
            "time_in_force": self.tif, "limit_price": price(self.limit_price),
            "stop_price": price(self.stop_price), "status": self.status, "extended_hours": False,
            "legs": None, "trail_percent": None, "trail_price": None, "hwm": None,
        }


def _num(x: float) -> str:
    """Decimal text that round-trips the float exactly (Alpaca sends numbers as strings)."""
    return repr(float(x))


def _price(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise unprocessable(f"{key} must be a number, got {value!r}") from None


@dataclass
class Position:
    qty: float = 0.0
    cost: float = 0.0  # signed cost basis of the open quantity


# An order update for the trading stream: (event, order JSON, extra fields such as price/qty/timestamp).
Listener = Callable[[str, dict[str, Any], dict[str, Any]], None]
# Alpaca's trade_updates event names for the simulator's events
_STREAM_EVENTS = {"accepted": "new", "partial_fill": "partial_fill", "fill": "fill", "canceled": "canceled",
                  "expired": "expired", "rejected": "rejected", "replaced": "replaced"}


class Broker:
    """Account state around the fill simulator; methods are called from the venue's event loop."""

    def __init__(self, market: ReplayMarket, clock: ReplayClock, cash: float,
                 slippage: SlippageModel | None = None, settings: FillSettings | None = None) -> None:
        self.market = market
        self.clock = clock
        self.cash = cash
        settings = dataclasses.replace(settings or FillSettings(), entry_latency_ms=0.0, ack_latency_ms=0.0)
        self.sim = FillSimulator(settings, slippage)
        self._namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"hybridtrader-venue-orders/{settings.seed}")
        self.account_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "hybridtrader-venue-account"))
        self.orders: dict[str, Order] = {}
        self.by_client_id: dict[str, str] = {}
        self.positions: dict[str, Position] = {}
        self.activities: list[dict[str, Any]] = []
        self.listeners: list[Listener] = []
        # prices at one time (the clock's now), kept while it lasts: a bar time's orders each value every
        # position for buying power, all at the same now
        self._prices: tuple[int, dict[str, float]] = (-1, {})
        # the replayed quotes in time order, fed to the simulator as the clock passes them
        q = market.quotes.frame
        order = np.argsort(market.quotes.ts, kind="stable")
        self._q_ts = market.quotes.ts[order]
        self._q_codes = self.sim.symbol_codes(q["symbol"])[order]
        self._q_cols = [q[c].cast(pl.Float64).to_numpy()[order]
                        for c in ("bid", "ask", "bid_size", "ask_size")]
        self._fed = 0

    # ---------------------------------------------------------------------------------- matching
    def sync(self) -> int:
        """Feed the simulator the quotes up to the clock's now and apply what happened; returns now."""
        now = self.clock.now_ns()
        upto = int(np.searchsorted(self._q_ts, now, side="right"))
        if upto > self._fed:
            part = slice(self._fed, upto)
            self.sim.on_quote_arrays(self._q_codes[part], self._q_ts[part], *(c[part] for c in self._q_cols))
            self._fed = upto
        self.sim.advance(now)
        self._apply()
        return now

    def _apply(self) -> None:
        """The simulator's events since the last call, in time order (`FillSimulator.drain_by_time`), onto
        the orders, the account and the listeners. Read from its columns, not a frame: this runs on every
        request and stream tick, mostly with no events."""
        ts, _slot, _sym, _side, kinds, qty, price, fee, filled, _left, ids, reasons = self.sim.drain_by_time()
        if not len(ids):
            return
        names = FillSimulatorCore.EVENT_KINDS
        ts_l, kinds_l, qty_l, price_l, fee_l, filled_l = (
            a.tolist() for a in (ts, kinds, qty, price, fee, filled))
        for i in range(len(ids)):
            o = self.orders[self.by_client_id[ids[i]]]
            t, kind = ts_l[i], names[kinds_l[i]]
            o.updated_ns = t
            extra: dict[str, Any] = {"timestamp": rfc3339(t)}
            if kind == "accepted":
                o.status = "new"
            elif kind in ("fill", "partial_fill"):
                o.filled_qty = filled_l[i]
                o.filled_notional += qty_l[i] * price_l[i]
                o.status = "filled" if kind == "fill" else "partially_filled"
                if kind == "fill":
                    o.filled_ns = t
                self._book_fill(o, qty_l[i], price_l[i], fee_l[i], t)
                extra.update(price=_num(price_l[i]), qty=_num(qty_l[i]),
                             position_qty=_num(self.positions.get(o.symbol, Position()).qty))
            elif kind == "canceled":
                o.status, o.canceled_ns = "canceled", t
            elif kind == "expired":
                o.status, o.expired_ns = "expired", t
            elif kind == "rejected":
                o.status, o.failed_ns, o.reason = "rejected", t, reasons[i]
            elif kind == "replaced":
                o.status, o.replaced_ns = "replaced", t
                o.replaced_by = self.by_client_id[reasons[i]]
            for listen in self.listeners:
                listen(_STREAM_EVENTS[kind], self.order_json(o), extra)

    def order_json(self, o: Order) -> dict[str, Any]:
        return o.json(self.market.asset_id(o.symbol))

    def _book_fill(self, o: Order, qty: float, price: float, fee: float, ts: int) -> None:
        """Cash, position (average cost) and the FILL activity of one fill."""
        signed = side_sign(o.side) * qty
        self.cash -= signed * price + fee
        p = self.positions.setdefault(o.symbol, Position())
        if p.qty == 0 or (p.qty > 0) == (signed > 0):
            p.cost += signed * price
            p.qty += signed
        else:  # reducing, maybe flipping: the closed part leaves at its average cost
            closing = min(abs(signed), abs(p.qty))
            direction = 1.0 if p.qty > 0 else -1.0
            p.cost -= (p.cost / p.qty) * direction * closing
            p.qty -= direction * closing
            flip = abs(signed) - closing
            if flip > 1e-9:
                p.qty = -direction * flip
                p.cost = p.qty * price
        if abs(p.qty) < 1e-9:
            del self.positions[o.symbol]
        n = len(self.activities)
        stamp = f"{from_utc_ns(ts):%Y%m%d%H%M%S}{ts % NS_PER_SECOND // NS_PER_MS:03d}"
        self.activities.append({
            "id": f"{stamp}::{uuid.uuid5(self._namespace, f'fill/{n}')}", "account_id": self.account_id,
            "activity_type": "FILL", "transaction_time": rfc3339(ts),
            "type": "fill" if o.filled_qty >= o.qty else "partial_fill", "price": _num(price),
            "qty": _num(qty), "side": o.side, "symbol": o.symbol, "leaves_qty": _num(o.qty - o.filled_qty),
            "order_id": o.id, "cum_qty": _num(o.filled_qty), "order_status": o.status, "_ns": ts,
        })

# ---------------------------------------------------------------------------------- account
    def price(self, symbol: str, now: int) -> float:
        """The market's last price of `symbol` at `now` (0 when it has none yet)."""
        at, prices = self._prices
        if at != now:
            prices = {}
            self._prices = (now, prices)
        p = prices.get(symbol)
        if p is None:
            last = self.market.last_price(symbol, now)
            p = prices[symbol] = last if last is not None else 0.0
        return p

    def valuation(self, now: int) -> tuple[float, float, float]:
        long_mv = short_mv = 0.0
        for sym, p in self.positions.items():
            mv = p.qty * self.price(sym, now)
            if mv >= 0:
                long_mv += mv
            else:
                short_mv += mv
        return self.cash + long_mv + short_mv, long_mv, short_mv

    def buying_power(self, now: int) -> float:
        equity, long_mv, short_mv = self.valuation(now)
        return max(0.0, equity * MARGIN_MULTIPLIER - (long_mv - short_mv))

    def submit(self, body: dict[str, Any]) -> Order:
        """Alpaca's checks (asset, qty, side, id, buying power, shortable), then the simulator's; its
        rejection reason becomes the 422 message."""
        now = self.sync()
        symbol = str(body.get("symbol") or "").upper()
        if symbol not in self.market.codes:
            raise unprocessable(f"asset \"{symbol}\" not found")
        try:
            qty = float(body.get("qty"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise unprocessable(f"qty must be a positive number, got {body.get('qty')!r}") from None
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise unprocessable(f"side must be buy or sell, got {side!r}")
        otype = str(body.get("type", body.get("order_type")))
        tif = str(body.get("time_in_force"))
        limit, stop = _price(body, "limit_price"), _price(body, "stop_price")
        cid = self._client_id(body)
        price = limit or stop or self.price(symbol, now)
        if side == "buy" and qty * price > self.buying_power(now):
            raise ApiError(403, 40310000, "insufficient buying power")
        held = self.positions.get(symbol, Position()).qty
        if side == "sell" and qty > held:
            asset = self.market.symbols.row(self.market.codes[symbol], named=True)
            if not asset["shortable"]:
                raise unprocessable(f"asset {symbol} cannot be sold short")
        o = self._record(cid, symbol, side, otype, tif, qty, limit, stop, now)
        self.sim.submit(cid, symbol, side, qty, now, type=otype, time_in_force=tif, limit_price=limit,
                        stop_price=stop)
        self.sync()
        return self._accepted(o)

    def _client_id(self, body: dict[str, Any]) -> str:
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if not isinstance(cid, str) or len(cid) > 48:
            raise unprocessable("client_order_id must be a string of at most 48 characters")
        if cid in self.by_client_id:
            raise unprocessable("client_order_id must be unique")
        return cid

    def _record(self, cid: str, symbol: str, side: str, otype: str, tif: str, qty: float,
                limit: float | None, stop: float | None, now: int) -> Order:
        o = Order(id=str(uuid.uuid5(self._namespace, cid)), client_order_id=cid, symbol=symbol, side=side,
                  type=otype, tif=tif, qty=qty, limit_price=limit, stop_price=stop, created_ns=now)
        self.orders[o.id] = o
        self.by_client_id[cid] = o.id
        return o

    def _accepted(self, o: Order) -> Order:
        """`o` if the simulator took it; a request it rejected was never an order: 422 with its reason."""
        if o.status != "rejected":
            return o
        del self.orders[o.id], self.by_client_id[o.client_order_id]
        raise unprocessable(o.reason)

    def cancel(self, order_id: str) -> Order:
        now = self.sync()
        o = self.orders.get(order_id)
        if o is None:
            raise not_found("order")
        if o.status not in OPEN_STATES or not self.sim.cancel(o.client_order_id, now):
            raise unprocessable(f'order is already in "{o.status}" state')
        self.sync()
        return o

    def replace(self, order_id: str, body: dict[str, Any]) -> Order:
        """PATCH /v2/orders/{id}: a new order (qty, limit/stop price changed) replaces an open one."""
        now = self.sync()
        old = self.orders.get(order_id)
        if old is None:
            raise not_found("order")
        if old.status not in OPEN_STATES:
            raise unprocessable(f'order is already in "{old.status}" state')
        tif = body.get("time_in_force")
        if tif is not None and tif != old.tif:
            raise unprocessable(f"time_in_force cannot be changed by replace ({old.tif} -> {tif})")
        qty = _price(body, "qty")
        limit, stop = _price(body, "limit_price"), _price(body, "stop_price")
        cid = self._client_id(body)
        new = self._record(cid, old.symbol, old.side, old.type, old.tif,
                           qty if qty is not None else old.qty - old.filled_qty,
                           limit if limit is not None else old.limit_price,
                           stop if stop is not None else old.stop_price, now)
        new.replaces = old.id
        self.sim.replace(old.client_order_id, cid, now, qty=qty, limit_price=limit, stop_price=stop)
        self.sync()
        return self._accepted(new)

    def position_json(self, symbol: str, p: Position, now: int) -> dict[str, Any]:
        price = self.price(symbol, now)
        mv = p.qty * price
        avg = p.cost / p.qty
        code = self.market.codes[symbol]
        return {
            "asset_id": self.market.asset_id(symbol), "symbol": symbol,
            "exchange": _exchange(code), "asset_class": "us_equity", "asset_marginable": True,
            "avg_entry_price": _num(avg), "qty": _num(p.qty), "qty_available": _num(p.qty),
            "side": "long" if p.qty > 0 else "short", "market_value": _num(mv),
            "cost_basis": _num(p.cost), "unrealized_pl": _num(mv - p.cost),
            "unrealized_plpc": _num((mv - p.cost) / abs(p.cost)) if p.cost else "0",
            "unrealized_intraday_pl": _num(mv - p.cost),
            "unrealized_intraday_plpc": _num((mv - p.cost) / abs(p.cost)) if p.cost else "0",
            "current_price": _num(price), "lastday_price": _num(price), "change_today": "0",
        }


def _exchange(code: int) -> str:
    return ("NASDAQ", "NYSE", "ARCA")[code % 3]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def _time_query(q: Any, key: str) -> int | None:
    """Query parameter `key` as an RFC 3339 time in UTC ns (None when absent)."""
    if not q.get(key):
        return None
    try:
        return utc_ns(to_utc(key, q[key]))
    except ValueError:
        raise unprocessable(f"{key} must be an RFC 3339 time, got {q[key]!r}") from None


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1", "yes")


class TradingApi:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.market = broker.market

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v2/account", self.account),
            web.get("/v2/clock", self.clock),
            web.get("/v2/calendar", self.calendar),
            web.get("/v2/assets", self.assets),
            web.get("/v2/assets/{symbol}", self.asset),
            web.post("/v2/orders", self.submit),
            web.get("/v2/orders", self.list_orders),
            web.delete("/v2/orders", self.cancel_all),
            web.get("/v2/orders:by_client_order_id", self.by_client_id),
            web.get("/v2/orders/{order_id}", self.get_order),
            web.patch("/v2/orders/{order_id}", self.replace),
            web.delete("/v2/orders/{order_id}", self.cancel),
            web.get("/v2/positions", self.positions),
            web.delete("/v2/positions", self.close_all),
            web.get("/v2/positions/{symbol}", self.position),
            web.delete("/v2/positions/{symbol}", self.close_one),
            web.get("/v2/account/activities", self.activities),
            web.get("/v2/account/activities/{activity_type}", self.activities),
        ]

    def _order_json(self, o: Order) -> dict[str, Any]:
        return self.broker.order_json(o)

    def _asset_json(self, i: int) -> dict[str, Any]:
        row = self.market.symbols.row(i, named=True)
        return {
            "id": self.market.asset_id(row["symbol"]), "class": "us_equity", "exchange": _exchange(i),
            "symbol": row["symbol"], "name": f"{row['symbol']} ({row['sector']})", "status": "active",
            "tradable": True, "marginable": True, "shortable": bool(row["shortable"]),
            "easy_to_borrow": bool(row["easy_to_borrow"]), "fractionable": True,
            "maintenance_margin_requirement": 30, "attributes": [],
        }

    async def account(self, request: web.Request) -> web.Response:
        b = self.broker
        now = b.sync()
        equity, long_mv, short_mv = b.valuation(now)
        bp = b.buying_power(now)
        return _json({
            "id": b.account_id, "account_number": "PAHYBRID01", "status": "ACTIVE",
            "crypto_status": "INACTIVE", "currency": "USD", "buying_power": _num(bp),
            "regt_buying_power": _num(bp), "daytrading_buying_power": _num(bp),
            "non_marginable_buying_power": _num(max(0.0, b.cash)), "cash": _num(b.cash),
            "accrued_fees": "0", "portfolio_value": _num(equity), "pattern_day_trader": False,
            "trading_blocked": False, "transfers_blocked": False, "account_blocked": False,
            "created_at": rfc3339(self.market.start_ns), "trade_suspended_by_user": False,
            "multiplier": _num(MARGIN_MULTIPLIER), "shorting_enabled": True, "equity": _num(equity),
            "last_equity": _num(equity), "long_market_value": _num(long_mv),
            "short_market_value": _num(short_mv), "initial_margin": "0", "maintenance_margin": "0",
            "last_maintenance_margin": "0", "sma": "0", "daytrade_count": 0,
        })

    async def clock(self, request: web.Request) -> web.Response:
        now = self.broker.clock.now_ns()
        dt = from_utc_ns(now)
        today = calendar.session_at(dt)
        d = dt.astimezone(calendar.NEW_YORK).date()
        if today is not None:
            next_close = calendar.session_bounds(today)[1]
            next_open = calendar.session_bounds(calendar.next_session(today))[0]
        else:
            later_today = calendar.is_session(d) and calendar.session_bounds(d)[0] > dt
            next_open, next_close = calendar.session_bounds(d if later_today else calendar.next_session(d))
        ny = calendar.NEW_YORK
        return _json({
            "timestamp": dt.astimezone(ny).isoformat(), "is_open": today is not None,
            "next_open": next_open.astimezone(ny).isoformat(),
            "next_close": next_close.astimezone(ny).isoformat(),
        })

    async def calendar(self, request: web.Request) -> web.Response:
        """NYSE sessions in [start, end] (default: the replayed market's days and the year after), with
        open/close as New York HH:MM and the settlement date (T+1 from 2024-05-28, T+2 before)."""
        first = from_utc_ns(self.market.start_ns).date()
        try:
            lo = date.fromisoformat(request.query.get("start") or first.isoformat())
            hi = date.fromisoformat(request.query.get("end") or (lo + timedelta(days=366)).isoformat())
        except ValueError:
            raise unprocessable(f"start/end must be YYYY-MM-DD, got {dict(request.query)}") from None
        out = []
        for d in calendar.sessions(lo, hi):
            o, c = (x.astimezone(calendar.NEW_YORK) for x in calendar.session_bounds(d))
            settle = calendar.next_session(d)
            if d < T1_SETTLEMENT:
                settle = calendar.next_session(settle)
            out.append({"date": d.isoformat(), "open": f"{o:%H:%M}", "close": f"{c:%H:%M}",
                        "session_open": "0400", "session_close": "2000",
                        "settlement_date": settle.isoformat()})
        return _json(out)

    async def assets(self, request: web.Request) -> web.Response:
        status = request.query.get("status")
        cls = request.query.get("asset_class")
        if status not in (None, "active") or cls not in (None, "us_equity"):
            return _json([])
        return _json([self._asset_json(i) for i in range(self.market.symbols.height)])

    async def asset(self, request: web.Request) -> web.Response:
        key = request.match_info["symbol"]
        for i, sym in enumerate(self.market.names):
            if key.upper() == sym or key == self.market.asset_id(sym):
                return _json(self._asset_json(i))
        raise not_found("asset")

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise ApiError(400, 40010000, "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, 40010000, "request body must be a JSON object")
        return body

    async def submit(self, request: web.Request) -> web.Response:
        return _json(self._order_json(self.broker.submit(await self._body(request))))

    async def replace(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        return _json(self._order_json(self.broker.replace(order_id, await self._body(request))))

    async def activities(self, request: web.Request) -> web.Response:
        """Account activities: FILL only (the venue has no cash movements or fees as activities). Query:
        `activity_types`, `after`/`until` (RFC 3339), `direction` (desc by default), `page_size` (<= 100),
        `page_token` (the id of the last activity of the previous page)."""
        self.broker.sync()
        q = request.query
        kinds = request.match_info.get("activity_type") or q.get("activity_types", "FILL")
        wanted = {k.strip().upper() for k in kinds.split(",") if k.strip()}
        rows = list(self.broker.activities) if "FILL" in wanted else []
        for key, keep in (("after", lambda t, x: t > x), ("until", lambda t, x: t <= x)):
            if q.get(key):
                limit_ns = _time_query(q, key)
                rows = [r for r in rows if keep(r["_ns"], limit_ns)]
        if q.get("direction", "desc") == "desc":
            rows.reverse()
        token = q.get("page_token")
        if token:
            ids = [r["id"] for r in rows]
            if token not in ids:
                raise unprocessable(f"page_token {token!r} is not an activity id")
            rows = rows[ids.index(token) + 1:]
        try:
            size = max(1, min(int(q.get("page_size", 100)), 100))
        except ValueError:
            raise unprocessable(f"page_size must be an integer, got {q.get('page_size')!r}") from None
        return _json([{k: v for k, v in r.items() if k != "_ns"} for r in rows[:size]])

    async def list_orders(self, request: web.Request) -> web.Response:
        self.broker.sync()
        q = request.query
        status = q.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise unprocessable(f"status must be open, closed or all, got {status!r}")
        symbols = {s.strip().upper() for s in q.get("symbols", "").split(",") if s.strip()}
        try:
            limit = int(q.get("limit", 50))
        except ValueError:
            raise unprocessable(f"limit must be an integer, got {q.get('limit')!r}") from None
        after, until = _time_query(q, "after"), _time_query(q, "until")
        orders = [
            o for o in self.broker.orders.values()
            if (status == "all" or (o.status in OPEN_STATES) == (status == "open"))
            and (not symbols or o.symbol in symbols)
            and (after is None or o.created_ns > after) and (until is None or o.created_ns <= until)
        ]
        orders.sort(key=lambda o: o.created_ns, reverse=q.get("direction", "desc") == "desc")
        return _json([self._order_json(o) for o in orders[: max(1, min(limit, 500))]])

    async def get_order(self, request: web.Request) -> web.Response:
        self.broker.sync()
        o = self.broker.orders.get(request.match_info["order_id"])
        if o is None:
            raise not_found("order")
        return _json(self._order_json(o))

    async def by_client_id(self, request: web.Request) -> web.Response:
        self.broker.sync()
        oid = self.broker.by_client_id.get(request.query.get("client_order_id", ""))
        if oid is None:
            raise not_found("order")
        return _json(self._order_json(self.broker.orders[oid]))

    async def cancel(self, request: web.Request) -> web.Response:
        self.broker.cancel(request.match_info["order_id"])
        return web.Response(status=204)

    def _cancel_open(self) -> list[dict[str, Any]]:
        self.broker.sync()
        out = []
        for o in list(self.broker.orders.values()):
            if o.status in OPEN_STATES:
                self.broker.cancel(o.id)
                out.append({"id": o.id, "status": 200, "body": self._order_json(o)})
        return out

    async def cancel_all(self, request: web.Request) -> web.Response:
        return _json(self._cancel_open(), status=207)

    async def positions(self, request: web.Request) -> web.Response:
        now = self.broker.sync()
        return _json([self.broker.position_json(s, p, now) for s, p in sorted(self.broker.positions.items())])

    async def position(self, request: web.Request) -> web.Response:
        now = self.broker.sync()
        sym = request.match_info["symbol"].upper()
        p = self.broker.positions.get(sym)
        if p is None:
            raise ApiError(404, 40410000, "position does not exist")
        return _json(self.broker.position_json(sym, p, now))

    def _close(self, symbol: str) -> dict[str, Any]:
        p = self.broker.positions[symbol]
        o = self.broker.submit({"symbol": symbol, "qty": abs(p.qty), "side": "sell" if p.qty > 0 else "buy",
                                "type": "market", "time_in_force": "day"})
        return self._order_json(o)

    async def close_all(self, request: web.Request) -> web.Response:
        if _truthy(request.query.get("cancel_orders")):
            self._cancel_open()
        self.broker.sync()
        out = []
        for sym in sorted(self.broker.positions):
            try:
                body = self._close(sym)
                out.append({"symbol": sym, "status": 200, "order_id": body["id"], "body": body})
            except ApiError as e:
                out.append({"symbol": sym, "status": e.status,
                            "body": {"code": e.code, "message": e.message, "symbol": sym}})
        return _json(out, status=207)

    async def close_one(self, request: web.Request) -> web.Response:
        self.broker.sync()
        sym = request.match_info["symbol"].upper()
        if sym not in self.broker.positions:
            raise ApiError(404, 40410000, "position does not exist")
        return _json(self._close(sym))
