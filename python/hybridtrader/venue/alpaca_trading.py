"""Alpaca Trading API v2 over the replayed market: account, clock, assets, orders, positions.

Orders fill against the replayed quotes as the replay clock passes them: a buy takes the ask, a sell the
bid, each quote at most its displayed size, so an order large against the quoted size fills partially
over several quotes (`partially_filled`). Limit orders fill when marketable. `ioc` fills what the current
quote allows and cancels the rest; `fok` fills entirely from the current quote or is canceled; `day`
orders expire at their session's close; `opg`/`cls` execute at the session open/close. With a slippage
model, each fill also pays the model's market impact beyond the quote: its cost forecast for the order
less the half spread the quote already charges. The broker is lazy: every request first brings it up to
the clock's time, so fills are deterministic for a given clock.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.market import calendar
from hybridtrader.venue.alpaca_data import ApiError
from hybridtrader.venue.market import ReplayMarket
from hybridtrader.venue.replay import ReplayClock

OPEN_STATES = ("new", "accepted", "partially_filled")
TIFS = ("day", "gtc", "opg", "cls", "ioc", "fok")
MARGIN_MULTIPLIER = 2.0
T1_SETTLEMENT = date(2024, 5, 28)  # US equities settle T+1 from this date, T+2 before
_NS = 1_000_000_000


def iso(ns: int) -> str:
    """UTC RFC 3339 with microseconds, as Alpaca's trading API writes times."""
    dt = datetime.fromtimestamp(ns // _NS, tz=UTC).replace(microsecond=(ns % _NS) // 1000)
    return dt.isoformat().replace("+00:00", "Z")


def to_ns(dt: datetime) -> int:
    return int(dt.timestamp()) * _NS + dt.microsecond * 1000


def not_found(what: str) -> ApiError:
    return ApiError(404, 40410000, f"{what} not found")


def unprocessable(message: str) -> ApiError:
    return ApiError(422, 40010001, message)


@dataclass
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    tif: str
    qty: float
    limit_price: float | None
    created_ns: int
    active_ns: int  # when it may first trade (submission, next open, or the close for cls)
    expires_ns: int | None  # day orders: their session's close
    next_row: int  # next quote row this order may trade against
    status: str = "new"
    filled_qty: float = 0.0
    filled_notional: float = 0.0
    updated_ns: int = 0
    filled_ns: int | None = None
    canceled_ns: int | None = None
    expired_ns: int | None = None

    def json(self, asset_id: str) -> dict[str, Any]:
        avg = self.filled_notional / self.filled_qty if self.filled_qty else None
        return {
            "id": self.id, "client_order_id": self.client_order_id,
            "created_at": iso(self.created_ns), "updated_at": iso(self.updated_ns or self.created_ns),
            "submitted_at": iso(self.created_ns),
            "filled_at": iso(self.filled_ns) if self.filled_ns else None,
            "expired_at": iso(self.expired_ns) if self.expired_ns else None,
            "canceled_at": iso(self.canceled_ns) if self.canceled_ns else None,
            "failed_at": None, "replaced_at": None, "replaced_by": None, "replaces": None,
            "asset_id": asset_id, "symbol": self.symbol, "asset_class": "us_equity", "notional": None,
            "qty": _num(self.qty), "filled_qty": _num(self.filled_qty),
            "filled_avg_price": _num(avg) if avg is not None else None,
            "order_class": "simple", "order_type": self.type, "type": self.type, "side": self.side,
            "time_in_force": self.tif,
            "limit_price": _num(self.limit_price) if self.limit_price is not None else None,
            "stop_price": None, "status": self.status, "extended_hours": False, "legs": None,
            "trail_percent": None, "trail_price": None, "hwm": None,
        }


def _num(x: float) -> str:
    """Decimal text that round-trips the float exactly (Alpaca sends numbers as strings)."""
    return repr(float(x))


@dataclass
class Position:
    qty: float = 0.0
    cost: float = 0.0  # signed cost basis of the open quantity


class Broker:
    """Account state and order matching; methods are called from the venue's event loop."""

    def __init__(self, market: ReplayMarket, clock: ReplayClock, cash: float,
                 slippage: SlippageModel | None = None) -> None:
        self.market = market
        self.clock = clock
        self.cash = cash
        self.slippage = slippage
        self.account_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "hybridtrader-venue-account"))
        self.orders: dict[str, Order] = {}
        self.by_client_id: dict[str, str] = {}
        self.positions: dict[str, Position] = {}
        self._lock = threading.Lock()
        q = market.quotes.frame
        self._bid = q["bid"].to_numpy()
        self._ask = q["ask"].to_numpy()
        self._bid_size = q["bid_size"].cast(float).to_numpy()
        self._ask_size = q["ask_size"].cast(float).to_numpy()

    # ---------------------------------------------------------------------------------- matching
    def sync(self) -> int:
        """Trade every open order against the quotes up to the clock's now; returns now."""
        now = self.clock.now_ns()
        for o in self.orders.values():
            if o.status in OPEN_STATES:
                self._work(o, now)
        return now

    def _work(self, o: Order, now: int) -> None:
        lo, hi = self.market.quotes.ranges.get(o.symbol, (0, 0))
        horizon = min(now, o.expires_ns) if o.expires_ns is not None else now
        if o.tif == "cls":
            horizon = min(horizon, o.active_ns)  # trades only on the last quote before the close
        if horizon >= o.active_ns or o.tif == "cls":
            end = lo + int(np.searchsorted(self.market.quotes.ts[lo:hi], horizon, side="right"))
            start = max(o.next_row, lo)
            if o.tif in ("ioc", "fok", "cls"):
                start = max(start, end - 1)  # only the quote standing at that moment
            if o.tif == "cls" and now < o.active_ns:
                end = start  # the close has not come yet
            if start < end:
                self._match(o, start, end)
                o.next_row = end
        if o.status not in OPEN_STATES:
            return
        if o.tif in ("ioc", "fok") and now >= o.active_ns:
            self._finish(o, "canceled", max(o.active_ns, o.created_ns))
        elif o.expires_ns is not None and now >= o.expires_ns:
            self._finish(o, "expired", o.expires_ns)

    def _match(self, o: Order, start: int, end: int) -> None:
        ts = self.market.quotes.ts[start:end]
        buy = o.side == "buy"
        price = (self._ask if buy else self._bid)[start:end]
        size = (self._ask_size if buy else self._bid_size)[start:end]
        if o.limit_price is not None:
            ok = price <= o.limit_price if buy else price >= o.limit_price
            size = np.where(ok, size, 0.0)
        remaining = o.qty - o.filled_qty
        if o.tif == "fok" and size.sum() < remaining:
            return
        cum = np.cumsum(size)
        k = int(np.searchsorted(cum, remaining, side="left"))
        for j in range(min(k + 1, size.size)):
            take = min(size[j], remaining)
            if take <= 0:
                continue
            self._fill(o, take, self.fill_price(o, float(price[j]), int(ts[j])), int(ts[j]))
            remaining -= take
            if remaining <= 0:
                break

    def impact_bps(self, o: Order, touch: float, ts: int) -> float:
        """Market impact of order `o` beyond the quoted touch: the model's cost less its half spread."""
        if self.slippage is None:
            return 0.0
        cost = self.slippage.forecast_slippage(o.symbol, o.side, o.qty, touch, ts)
        return max(0.0, cost - self.slippage.forecast_spread(o.symbol, ts) / 2)

    def fill_price(self, o: Order, touch: float, ts: int) -> float:
        sign = 1.0 if o.side == "buy" else -1.0
        return touch * (1.0 + sign * self.impact_bps(o, touch, ts) / 1e4)

    def _fill(self, o: Order, qty: float, price: float, ts: int) -> None:
        o.filled_qty += qty
        o.filled_notional += qty * price
        o.updated_ns = ts
        full = o.filled_qty >= o.qty - 1e-9
        o.status = "filled" if full else "partially_filled"
        if full:
            o.filled_ns = ts
        signed = qty if o.side == "buy" else -qty
        self.cash -= signed * price
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

    def _finish(self, o: Order, status: str, ts: int) -> None:
        o.status = status
        o.updated_ns = ts
        if status == "canceled":
            o.canceled_ns = ts
        else:
            o.expired_ns = ts

    # ---------------------------------------------------------------------------------- account
    def price(self, symbol: str, now: int) -> float:
        p = self.market.last_price(symbol, now)
        return p if p is not None else 0.0

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
        now = self.sync()
        symbol = str(body.get("symbol") or "").upper()
        if symbol not in self.market.codes:
            raise unprocessable(f"asset \"{symbol}\" not found")
        try:
            qty = float(body.get("qty"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise unprocessable(f"qty must be a positive number, got {body.get('qty')!r}") from None
        if not qty > 0:
            raise unprocessable(f"qty must be > 0, got {qty}")
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise unprocessable(f"side must be buy or sell, got {side!r}")
        otype = body.get("type", body.get("order_type"))
        if otype not in ("market", "limit"):
            raise unprocessable(f"order type {otype!r} is not supported (market or limit)")
        tif = body.get("time_in_force")
        if tif not in TIFS:
            raise unprocessable(f"time_in_force must be one of {', '.join(TIFS)}, got {tif!r}")
        limit = body.get("limit_price")
        if otype == "limit":
            try:
                limit = float(limit)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise unprocessable(f"limit_price is required for limit orders, got {limit!r}") from None
            if not limit > 0:
                raise unprocessable(f"limit_price must be > 0, got {limit}")
        elif limit is not None:
            raise unprocessable("limit_price is only allowed on limit orders")
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if not isinstance(cid, str) or len(cid) > 48:
            raise unprocessable("client_order_id must be a string of at most 48 characters")
        if cid in self.by_client_id:
            raise unprocessable("client_order_id must be unique")
        price = limit if otype == "limit" else self.price(symbol, now)
        if side == "buy" and qty * price > self.buying_power(now):
            raise ApiError(403, 40310000, "insufficient buying power")
        held = self.positions.get(symbol, Position()).qty
        if side == "sell" and qty > held:
            asset = self.market.symbols.row(self.market.codes[symbol], named=True)
            if not asset["shortable"]:
                raise unprocessable(f"asset {symbol} cannot be sold short")
        active, expires = self._schedule(tif, now)
        q = self.market.quotes
        lo, hi = q.ranges.get(symbol, (0, 0))
        # an order live now may take the quote standing now; a queued one only quotes after it starts
        first = lo + int(np.searchsorted(q.ts[lo:hi], active, side="right")) - (1 if active == now else 0)
        o = Order(
            id=str(uuid.uuid4()), client_order_id=cid, symbol=symbol, side=side, type=otype, tif=tif,
            qty=qty, limit_price=limit, created_ns=now, active_ns=active, expires_ns=expires,
            next_row=max(first, lo), status="accepted" if active > now else "new",
        )
        self.orders[o.id] = o
        self.by_client_id[cid] = o.id
        self._work(o, now)
        return o

    def _schedule(self, tif: str, now: int) -> tuple[int, int | None]:
        """(first time the order may trade, expiry) for a time in force."""
        dt = datetime.fromtimestamp(now / _NS, tz=UTC)
        today = calendar.session_at(dt)
        if today is not None:
            open_ns, close_ns = (to_ns(x) for x in calendar.session_bounds(today))
        else:
            d = dt.astimezone(calendar.NEW_YORK).date()
            nxt = d if calendar.is_session(d) and to_ns(calendar.session_bounds(d)[0]) > now \
                else calendar.next_session(d)
            open_ns, close_ns = (to_ns(x) for x in calendar.session_bounds(nxt))
        if tif == "opg":
            if today is not None:  # past today's open: the next session's auction
                open_ns, close_ns = (to_ns(x) for x in calendar.session_bounds(calendar.next_session(today)))
            return open_ns, close_ns
        if tif == "cls":
            return close_ns - 1, close_ns
        start = now if today is not None else open_ns
        return start, (close_ns if tif in ("day", "ioc", "fok") else None)

    def cancel(self, order_id: str) -> Order:
        self.sync()
        o = self.orders.get(order_id)
        if o is None:
            raise not_found("order")
        if o.status not in OPEN_STATES:
            raise unprocessable(f'order is already in "{o.status}" state')
        self._finish(o, "canceled", self.clock.now_ns())
        return o

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
            web.delete("/v2/orders/{order_id}", self.cancel),
            web.get("/v2/positions", self.positions),
            web.delete("/v2/positions", self.close_all),
            web.get("/v2/positions/{symbol}", self.position),
            web.delete("/v2/positions/{symbol}", self.close_one),
        ]

    def _order_json(self, o: Order) -> dict[str, Any]:
        return o.json(self.market.asset_id(o.symbol))

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
            "created_at": iso(self.market.start_ns), "trade_suspended_by_user": False,
            "multiplier": _num(MARGIN_MULTIPLIER), "shorting_enabled": True, "equity": _num(equity),
            "last_equity": _num(equity), "long_market_value": _num(long_mv),
            "short_market_value": _num(short_mv), "initial_margin": "0", "maintenance_margin": "0",
            "last_maintenance_margin": "0", "sma": "0", "daytrade_count": 0,
        })

    async def clock(self, request: web.Request) -> web.Response:
        now = self.broker.clock.now_ns()
        dt = datetime.fromtimestamp(now // _NS, tz=UTC).replace(microsecond=(now % _NS) // 1000)
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
        first = datetime.fromtimestamp(self.market.start_ns // _NS, tz=UTC).date()
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

    async def submit(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise ApiError(400, 40010000, "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, 40010000, "request body must be a JSON object")
        return _json(self._order_json(self.broker.submit(body)))

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
        orders = [
            o for o in self.broker.orders.values()
            if (status == "all" or (o.status in OPEN_STATES) == (status == "open"))
            and (not symbols or o.symbol in symbols)
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
