"""Trade one NYSE session against a venue's Alpaca trading API, minute by minute on the replay clock.

Each minute (the venue clock is moved to the minute's start; the bar that just ended is known):
1. the circuit breaker sees the account equity (every `equity_every` minutes) and, from
   `risk.exposure.flatten_minutes_before_close` before the close (`should_flatten_intraday`), every order is
   cancelled and every position closed (`close_all_positions`); nothing new is opened after that;
2. open trades whose exit is due are closed (mean reversion: the close reached the entry-time mean, or
   `horizon_bars` passed) with `close_position`;
3. child orders of parents whose slice time has come are sent (market, day);
4. new signals (at most one open trade per symbol, at most `max_trades` in the session) pass the toxic-time
   filter (`entry_blocked`, with the earnings blackout when one is given), are sized by `DynamicSizer`,
   clipped to the `ExposureManager`'s caps, given a cost forecast by the `SlippageModel` and cut into child
   orders by `plan_parent_order` (slicing window no longer than the trade's horizon).
Every API call goes through the `RateLimiter`. Afterwards every order is read back; realised slippage is
measured against the decision price (the last close known when the order was decided, i.e. implementation
shortfall), and the slippage model learns from the fills.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest

from hybridtrader.config import Config
from hybridtrader.data.earnings_cache import EarningsBlackout
from hybridtrader.errors import BrokerError, DataError, first_line
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.execution.time_slicing import plan_parent_order
from hybridtrader.execution.toxic_time import entry_blocked
from hybridtrader.market.calendar import NEW_YORK, session_bounds
from hybridtrader.market.timeconv import NS_PER_MINUTE, from_utc_ns, utc_ns
from hybridtrader.risk.dynamic_sizing import DynamicSizer
from hybridtrader.risk.exposure_manager import ExposureManager
from hybridtrader.venue.replay import ReplayClock

BOOKS = {"mean_reversion": "intraday", "triple_barrier": "swing"}


@dataclass
class Trade:
    """One parent order: entry children on a schedule, then one exit."""

    id: str
    strategy: str
    book: str
    symbol: str
    side: str  # of the entry
    qty: int
    decision_ns: int
    decision_price: float
    forecast_bps: float
    target: float  # mean-reversion exit level (NaN: none)
    exit_after_ns: int
    children: list[tuple[int, int]]  # (ts_ns, qty) not yet sent
    orders: list[dict[str, Any]] = field(default_factory=list)  # sent: client_order_id, role, decision...


@dataclass
class SessionResult:
    session: date
    start_equity: float
    end_equity: float
    signals: int
    skipped: dict[str, int]
    trades: list[Trade]
    orders: pl.DataFrame  # one row per order sent, with what the venue reports back
    positions_after: int
    learned_fills: int
    api_calls: int
    flattened: str  # why and when everything was closed

    @property
    def pnl(self) -> float:
        return self.end_equity - self.start_equity


ORDER_SCHEMA = {
    "client_order_id": pl.String, "trade": pl.String, "strategy": pl.String, "role": pl.String,
    "symbol": pl.String, "side": pl.String, "qty": pl.Float64, "decision_ts": pl.Datetime("ns", "UTC"),
    "decision_price": pl.Float64, "forecast_bps": pl.Float64, "status": pl.String,
    "filled_qty": pl.Float64, "filled_avg_price": pl.Float64, "realised_bps": pl.Float64,
}  # fmt: skip


class SessionTrader:
    def __init__(
        self,
        config: Config,
        trading: TradingClient,
        clock: ReplayClock,
        limiter: RateLimiter,
        slippage: SlippageModel,
        exposure: ExposureManager,
        *,
        max_trades: int = 20,
        equity_every: int = 15,
        progress: Callable[[int, int, int], None] | None = None,
        earnings_blackout: EarningsBlackout | None = None,
    ) -> None:
        if max_trades < 0:
            raise DataError(f"max_trades must be >= 0, got {max_trades}")
        self.config = config
        self.trading = trading
        self.clock = clock
        self.limiter = limiter
        self.slippage = slippage
        self.exposure = exposure
        self.sizer = DynamicSizer(config)
        self.max_trades = max_trades
        self.equity_every = equity_every
        self.progress = progress or (lambda minute, total, trades: None)
        self.earnings = earnings_blackout
        self.api_calls = 0

    def _api(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.api_calls += 1
        try:
            return self.limiter.call(fn, args, kwargs)
        except APIError as e:  # translated where it enters: one line naming the call, not a traceback
            status = e.status_code or "an error"
            raise BrokerError(f"trading API {fn.__name__}: answered {status}: {first_line(e)}") from e

    def _equity(self) -> float:
        return float(self._api(self.trading.get_account).equity)

    def _send(
        self, trade: Trade, role: str, side: str, qty: float, now: int, price: float, forecast: float
    ) -> None:
        cid = f"{trade.id}-{len(trade.orders)}"
        self._api(
            self.trading.submit_order,
            MarketOrderRequest(
                symbol=trade.symbol,
                qty=qty,
                side=OrderSide(side),
                time_in_force=TimeInForce.DAY,
                client_order_id=cid,
            ),
        )
        trade.orders.append(_record(cid, role, side, float(qty), now, price, forecast))

    # ------------------------------------------------------------------------------------ run
    def trade_session(self, session: date, bars: pl.DataFrame, signals: pl.DataFrame) -> SessionResult:
        """Trade `session`: `bars` are its 1-minute bars (closes for exits and decisions), `signals` the
        strategy signals (pipeline.signals.SIGNAL_SCHEMA) of its bars."""
        open_dt, close_dt = session_bounds(session)
        open_ns, close_ns = utc_ns(open_dt), utc_ns(close_dt)
        minutes = (close_ns - open_ns) // NS_PER_MINUTE
        self.clock.advance_to(max(open_ns, self.clock.now_ns()))
        start_equity = self._equity()
        self.exposure.set_equity(start_equity)
        self.exposure.should_emergency_flatten(start_equity, open_ns)
        closes = {
            (s, int(t)): c
            for s, t, c in zip(
                bars["symbol"].to_list(),
                bars["ts"].dt.epoch("ns").to_list(),
                bars["close"].to_list(),
                strict=True,
            )
        }
        by_known: dict[int, list[dict[str, Any]]] = {}
        for row in signals.iter_rows(named=True):
            known = utc_ns(row["ts"]) + NS_PER_MINUTE
            by_known.setdefault(known, []).append(row)
        symbols = sorted({s for s, _ in closes})
        last_close: dict[str, float] = {}
        trades: list[Trade] = []
        open_by_symbol: dict[str, Trade] = {}
        skipped: dict[str, int] = {}
        flattened = ""  # why and when everything was closed (empty: not yet)
        equity = start_equity

        def skip(reason: str) -> None:
            skipped[reason] = skipped.get(reason, 0) + 1

        for m in range(1, minutes + 1):
            now = open_ns + m * NS_PER_MINUTE
            self.clock.advance_to(now)
            for sym in symbols:
                c = closes.get((sym, now - NS_PER_MINUTE))
                if c is not None:
                    last_close[sym] = c
            if m % self.equity_every == 0:
                equity = self._equity()
                self.exposure.set_equity(equity)
                self.exposure.should_emergency_flatten(equity, now)
            halted = self.exposure.state == "HALTED"
            if not flattened and (halted or self.exposure.should_flatten_intraday(now)):
                closing = self._api(self.trading.close_all_positions, cancel_orders=True)
                for t in open_by_symbol.values():
                    t.children.clear()
                    self.exposure.update_position(t.book, t.symbol, 0.0, last_close.get(t.symbol, 1.0))
                last_trade = {t.symbol: t for t in trades}
                for r in closing:
                    if not isinstance(r.body, Order):
                        raise BrokerError(f"close_all_positions: {r.symbol} not closed: {r.body}")
                    # a position left by an earlier trade (a fill after its exit) belongs to that trade
                    t = open_by_symbol.get(r.symbol) or last_trade.get(str(r.symbol))
                    if t is None:
                        raise BrokerError(f"close_all_positions closed {r.symbol}, which no trade opened")
                    px = last_close.get(t.symbol, t.decision_price)
                    qty = float(r.body.qty or 0)
                    side = r.body.side.value
                    fc = self.slippage.forecast_slippage(t.symbol, side, qty, px, now)
                    t.orders.append(_record(r.body.client_order_id, "flatten", side, qty, now, px, fc))
                open_by_symbol.clear()
                why = f"circuit breaker: {self.exposure.state_reason}" if halted else "end of day"
                at = from_utc_ns(now).astimezone(NEW_YORK)
                flattened = f"{why} at {at:%H:%M} New York"
            if flattened:
                self.progress(m, minutes, len(trades))
                continue
            # exits
            for sym, t in list(open_by_symbol.items()):
                price = last_close.get(sym)
                sign = 1.0 if t.side == "buy" else -1.0
                reverted = price is not None and t.target == t.target and sign * (price - t.target) >= 0
                if reverted or now >= t.exit_after_ns:
                    t.children.clear()
                    sent = sum(o["qty"] for o in t.orders if o["role"] == "entry")
                    if sent > 0:
                        px = price if price is not None else t.decision_price
                        fc = self.slippage.forecast_slippage(sym, _opposite(t.side), sent, px, now)
                        o = self._api(self.trading.close_position, sym)
                        t.orders.append(
                            _record(o.client_order_id, "exit", o.side.value, float(o.qty), now, px, fc)
                        )
                    self.exposure.update_position(t.book, sym, 0.0, price or t.decision_price)
                    del open_by_symbol[sym]
            # child slices due
            for t in open_by_symbol.values():
                while t.children and t.children[0][0] <= now:
                    _, q = t.children.pop(0)
                    px = last_close.get(t.symbol, t.decision_price)
                    fc = self.slippage.forecast_slippage(t.symbol, t.side, q, px, now)
                    self._send(t, "entry", t.side, q, now, px, fc)
            # entries
            for s in by_known.get(now, []):
                sym, strategy = s["symbol"], s["strategy"]
                if sym in open_by_symbol:
                    skip("already holding the symbol")
                    continue
                if len(trades) >= self.max_trades:
                    skip("max trades reached")
                    continue
                blocked, why = entry_blocked(
                    now, sym, config=self.config.execution, earnings_blackout=self._blackout
                )
                if blocked:
                    skip("toxic time: " + why.split(" of the ")[0].split(" for ")[0])
                    continue
                side = "buy" if s["side"] > 0 else "sell"
                price = float(s["close"])
                book = BOOKS[_kind(self.config, strategy)]
                qty = self.sizer.calculate_position_size(equity, price, float(s["atr"]), sym)
                qty = self.exposure.max_allowed_qty(sym, side, qty, price, book)
                if qty <= 0:
                    skip("exposure caps")
                    continue
                fc = self.slippage.forecast_slippage(sym, side, qty, price, now)
                plan = plan_parent_order(
                    qty, now, config=self._slicing(int(s["horizon_bars"])), model=self.slippage, symbol=sym
                )
                children = [
                    (utc_ns(ts), int(q))
                    for ts, q in plan.children.select("ts", "qty").iter_rows()
                    if q > 0
                ]
                if not children:
                    skip("participation cap leaves no quantity")
                    continue
                t = Trade(
                    id=uuid.uuid4().hex[:12],
                    strategy=strategy,
                    book=book,
                    symbol=sym,
                    side=side,
                    qty=plan.scheduled,
                    decision_ns=now,
                    decision_price=price,
                    forecast_bps=fc,
                    target=float(s["target"]) if s["target"] is not None else float("nan"),
                    exit_after_ns=now + int(s["horizon_bars"]) * NS_PER_MINUTE,
                    children=children,
                )
                self.exposure.update_position(book, sym, plan.scheduled * (1 if side == "buy" else -1), price)
                trades.append(t)
                open_by_symbol[sym] = t
                while t.children and t.children[0][0] <= now:
                    _, q = t.children.pop(0)
                    self._send(
                        t,
                        "entry",
                        side,
                        q,
                        now,
                        price,
                        self.slippage.forecast_slippage(sym, side, q, price, now),
                    )
            self.progress(m, minutes, len(trades))
        self.clock.advance_to(close_ns)
        orders = self._read_back(trades)
        positions = self._api(self.trading.get_all_positions)
        end_equity = self._equity()
        learned = self._learn(orders)
        return SessionResult(
            session,
            start_equity,
            end_equity,
            int(signals.height),
            skipped,
            trades,
            orders,
            len(positions),
            learned,
            self.api_calls,
            flattened,
        )

    def _blackout(self, symbol: str, t: datetime) -> bool:
        return self.earnings is not None and self.earnings.is_blacked_out(
            symbol, t.astimezone(NEW_YORK).date()
        )

    def _slicing(self, horizon_bars: int) -> Any:
        """The execution config with the slicing window no longer than the trade's holding horizon."""
        ex = self.config.execution
        window = min(ex.time_slicing.window_minutes, float(horizon_bars))
        return ex.model_copy(
            update={"time_slicing": ex.time_slicing.model_copy(update={"window_minutes": window})}
        )

    def _read_back(self, trades: list[Trade]) -> pl.DataFrame:
        """Every order of the session as the venue reports it, matched to what was decided by client order
        id (one listing; an order missing from it is fetched by its id, so none is lost)."""
        listing = self._api(
            self.trading.get_orders, GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500, direction="asc")
        )
        by_cid = {o.client_order_id: o for o in listing}
        rows = []
        for t in trades:
            for x in t.orders:
                cid = x["client_order_id"]
                o = by_cid.get(cid) or self._api(self.trading.get_order_by_client_id, cid)
                filled = float(o.filled_qty or 0)
                avg = float(o.filled_avg_price) if o.filled_avg_price is not None else None
                sign = 1.0 if x["side"] == "buy" else -1.0
                realised = sign * (avg / x["decision_price"] - 1.0) * 1e4 if avg else None
                rows.append(
                    {
                        "client_order_id": cid,
                        "trade": t.id,
                        "strategy": t.strategy,
                        "role": x["role"],
                        "symbol": t.symbol,
                        "side": x["side"],
                        "qty": float(o.qty or 0),
                        "decision_ts": from_utc_ns(x["decision_ns"]),
                        "decision_price": x["decision_price"],
                        "forecast_bps": x["forecast_bps"],
                        "status": o.status.value,
                        "filled_qty": filled,
                        "filled_avg_price": avg,
                        "realised_bps": realised,
                    }
                )
        return pl.DataFrame(rows, schema=ORDER_SCHEMA)

    def _learn(self, orders: pl.DataFrame) -> int:
        fills = orders.filter(pl.col("filled_qty") > 0).select(
            "symbol",
            "side",
            pl.col("filled_qty").alias("qty"),
            pl.col("decision_price").alias("arrival_price"),
            pl.col("filled_avg_price").alias("fill_price"),
            pl.col("decision_ts").alias("ts"),
        )
        if fills.height == 0:
            return 0
        return int(self.slippage.update_symbol_stats(fills))


def fills_by_leg(orders: pl.DataFrame) -> pl.DataFrame:
    """Orders summed per trade leg (the entry's child orders together, the exit or flatten): first decision
    time, shares sent and filled, average fill price, and forecast / realised bps weighted by filled
    shares."""
    w = pl.col("filled_qty")
    return (
        orders.group_by("trade", "role", maintain_order=True)
        .agg(
            pl.col("decision_ts").min(),
            pl.col("strategy", "symbol", "side").first(),
            pl.len().alias("orders"),
            pl.col("qty").sum(),
            w.sum().alias("filled_qty"),
            ((pl.col("filled_avg_price") * w).sum() / w.sum()).alias("avg_price"),
            ((pl.col("forecast_bps") * w).sum() / w.sum()).alias("forecast_bps"),
            ((pl.col("realised_bps") * w).sum() / w.sum()).alias("realised_bps"),
        )
        .sort("decision_ts", maintain_order=True)
    )


def _record(
    cid: str, role: str, side: str, qty: float, now: int, price: float, forecast: float
) -> dict[str, Any]:
    return {"client_order_id": cid, "role": role, "side": side, "qty": qty, "decision_ns": now,
            "decision_price": price, "forecast_bps": forecast}  # fmt: skip


def _opposite(side: str) -> str:
    return "sell" if side == "buy" else "buy"


def _kind(config: Config, strategy: str) -> str:
    from hybridtrader.pipeline.signals import label_kind

    return label_kind(config, strategy)
