"""The fill simulator of the backtest and the local venue (one set of rules, in Rust: `rust/src/fills.rs`).

Times are int64 UTC nanoseconds; sides "buy"/"sell"; quantities in shares; prices and fees in USD.

Life of an order submitted at `T`:
- it becomes active at `A = max(T + entry_latency, session open)` (the session open at `A`, else the
  next one) and is acknowledged ("accepted") at `T + ack_latency` (or just before its first fill or
  cancel when that comes sooner);
- quotes: a buy takes the ask, a sell the bid, each quote at most its displayed size (the rest waits for
  later quotes: partial fills). The order first meets the quote standing at `A` (filled at time `A`), then
  every later quote. Limits trade when the touch is at the limit or better, at the touch; stops trigger
  when the touch reaches the stop (buy: ask >= stop; sell: bid <= stop), then trade as market or limit;
- bars only (`ts` = bar start): an order trades on bars that start at or after `A`. Market at the open;
  limit at the open when the open is already at or better than the limit (a gap), else at the limit when
  the bar's range reaches it; a stop triggers at the open when the bar gaps through it, else at the stop
  when the range reaches it; a stop-limit then follows the limit rule (its limit on the far side of an
  intra-bar trigger waits for the next bar). Each bar gives an order at most
  `floor(bar_participation x volume)` shares; the rest carries to later bars;
- time in force: `day` expires at its session's close (early closes included, from
  `hybridtrader.market.calendar`); `gtc` never expires; `ioc` trades once (its first quote or bar) and
  cancels the rest; `fok` trades its whole quantity then or is canceled; `opg` trades its whole quantity at
  the session's first quote (touch) or bar (open), `cls` at the close on the session's last quote (touch)
  or bar (close); stop orders take day or gtc;
- cancel and replace take effect after the entry latency, so an order may fill meanwhile; a replace that
  arrives after its order closed rejects the replacement;
- price: touch x (1 +/- impact_bps / 1e4) against the order, never beyond a limit, where impact_bps is
  the slippage model's cost forecast at submit less half its spread forecast (the touch already pays the
  half spread);
- fees per fill: commission max(per_share x filled, minimum) per order, charged as the fills come; on
  sells the SEC fee (rate x notional) and the FINRA TAF (per share, capped per fill). Not rounded to cents.

Each of our orders sees the displayed size on its own (our orders do not queue behind each other).
Deterministic: same calls, same events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, TypeVar

import numpy as np
import polars as pl

from hybridtrader._core import FillSimulatorCore, OrderFlowCore
from hybridtrader.config import ConfigLike, FillsConfig, config_section
from hybridtrader.errors import DataError
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.market import calendar
from hybridtrader.market.schema import TS
from hybridtrader.market.timeconv import NS_PER_MS, from_utc_ns, utc_ns

FILL_EVENT_SCHEMA = {
    "ts": TS, "client_order_id": pl.String, "symbol": pl.String, "side": pl.String, "event": pl.String,
    "qty": pl.Float64, "price": pl.Float64, "fee": pl.Float64, "filled_qty": pl.Float64,
    "leaves_qty": pl.Float64, "reason": pl.String,
}
ORDER_SCHEMA = {
    "client_order_id": pl.String, "symbol": pl.String, "side": pl.String, "type": pl.String,
    "tif": pl.String, "qty": pl.Float64, "filled_qty": pl.Float64, "limit_price": pl.Float64,
    "stop_price": pl.Float64, "status": pl.String, "filled_avg_price": pl.Float64, "fees": pl.Float64,
    "submitted_at": TS, "expires_at": TS,
}
T = TypeVar("T")
_SMALL = 2_000  # rows up to which symbol codes come from a dict rather than a Polars replace


@dataclass(frozen=True)
class FillSettings:
    """Costs and timing of simulated fills; `FillsConfig` (`execution.fills`) documents the defaults."""

    commission_per_share: float = 0.0
    commission_min: float = 0.0
    sec_fee_rate: float = 27.8e-6
    taf_per_share: float = 0.000166
    taf_max_per_trade: float = 8.30
    entry_latency_ms: float = 50.0
    ack_latency_ms: float = 20.0
    bar_participation: float = 0.1
    impact: bool = True
    seed: int = 0

    @classmethod
    def from_config(cls, config: ConfigLike = None) -> FillSettings:
        """From `execution.fills` of any config form (see `config_section`; None for the defaults)."""
        section: FillsConfig = config_section(config, "execution.fills")
        return cls(**{f.name: getattr(section, f.name) for f in fields(cls)})


def _names(codes: Any, names: list[str]) -> pl.Series:
    """Strings of integer codes into `names`; code len(names) (an unparsed value) is ""."""
    return pl.Series([*names, ""], dtype=pl.String).gather(pl.Series(codes, dtype=pl.UInt32))


def _as(column: pl.Series, dtype: pl.DataType) -> pl.Series:
    """`column` cast to `dtype`, skipping the (costly per call) cast when it already is."""
    return column if column.dtype == dtype else column.cast(dtype)


def _ts(ns: Any) -> pl.Series:
    return pl.Series(ns, dtype=pl.Int64).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")


class FillSimulator:
    """Orders in, events out: see the module docstring for the rules.

    Feed market data in time order (`on_quotes` or `on_bars`) and call `advance(ts)` once all data up to
    `ts` is fed (submit, cancel and replace at `ts` imply it). `drain()` returns what happened since the
    last drain as a FILL_EVENT_SCHEMA frame in time order.
    """

    def __init__(self, settings: FillSettings | None = None, slippage: SlippageModel | None = None) -> None:
        self.settings = s = settings or FillSettings()
        self.slippage = slippage if s.impact else None
        self._entry_ns = round(s.entry_latency_ms * NS_PER_MS)
        self._core = FillSimulatorCore(
            commission_per_share=s.commission_per_share, commission_min=s.commission_min,
            sec_fee_rate=s.sec_fee_rate, taf_per_share=s.taf_per_share, taf_cap=s.taf_max_per_trade,
            entry_latency_ns=self._entry_ns, ack_latency_ns=round(s.ack_latency_ms * NS_PER_MS),
            bar_participation=s.bar_participation,
        )
        self._codes: dict[str, int] = {}
        self._names: list[str] = []
        self._session = (0, 0)  # the last session looked up: (open, close) ns
        # symbol -> where `submit_from` places its orders active in one session: (core, code, impact model,
        # session open, session close)
        self._placements: dict[str, tuple[FillSimulatorCore, int, SlippageModel | None, int, int]] = {}

    def fill_fee(self, side: str, before: float, qty: float, price: float) -> float:
        """Fees (USD) of one fill of `qty` shares at `price` on an order that had filled `before` shares:
        the commission's increment plus, on sells, the SEC fee and the TAF (the rule in the module
        docstring), for a fill made elsewhere, e.g. by a live broker."""
        return self._core.fill_fee(side, before, qty, price)

    # ------------------------------------------------------------------------------ symbols
    def _code(self, symbol: str) -> int:
        code = self._codes.get(symbol)
        if code is None:
            if not isinstance(symbol, str) or not symbol:
                raise TypeError(f"symbol must be a non-empty string, got {symbol!r}")
            code = self._codes[symbol] = len(self._names)
            self._names.append(symbol)
        return code

    def symbol_codes(self, symbols: pl.Series) -> np.ndarray:
        """The simulator's uint32 codes of a symbol column (new symbols get new codes)."""
        if symbols.null_count():
            raise DataError(f"column {symbols.name!r}: {symbols.null_count()} null symbols")
        if symbols.len() <= _SMALL:  # a cross-section per bar time: dict lookups beat a Polars call
            return np.fromiter(map(self._code, symbols.to_list()), dtype=np.uint32, count=symbols.len())
        for s in symbols.unique().to_list():
            self._code(s)
        return symbols.replace_strict(self._codes, return_dtype=pl.UInt32).to_numpy()

    # ------------------------------------------------------------------------------ sessions
    def _session_of(self, ns: int, after_open: bool) -> tuple[int, int]:
        """(open, close) of the session open at `ns`, else the next one; with `after_open` (opg), the
        next session whose open is not yet past."""
        o, c = self._session
        if o <= ns < c and not after_open:
            return o, c
        d: date = from_utc_ns(ns).astimezone(calendar.NEW_YORK).date()
        if not calendar.is_session(d):
            d = calendar.next_session(d)
        o, c = (utc_ns(x) for x in calendar.session_bounds(d))
        if ns >= c or (after_open and ns >= o):
            o, c = (utc_ns(x) for x in calendar.session_bounds(calendar.next_session(d)))
        if not after_open:
            self._session = (o, c)
        return o, c

    # ------------------------------------------------------------------------------ orders
    def submit(self, client_order_id: str, symbol: str, side: str, qty: float, ts_ns: int, *,
               type: str = "market", time_in_force: str = "day", limit_price: float | None = None,
               stop_price: float | None = None) -> None:
        """Submit an order at `ts_ns`. An invalid request (side, type, tif, qty, prices, a duplicate id)
        is not an exception: it gives a "rejected" event whose reason names the field."""
        code = self._code(symbol)
        open_ns, close_ns = self._session_of(ts_ns + self._entry_ns, time_in_force == "opg")
        # the impact (the slippage model's cost forecast less half its spread forecast) is the core's
        self._core.submit(client_order_id, code, symbol, side, type, time_in_force, qty, ts_ns, limit_price,
                          stop_price, self.slippage, open_ns, close_ns)

    def submit_from(self, flow: OrderFlowCore, strategy: str, book: str, leg: str, request: Any,
                    ts_ns: int, reference: float, price: float, feed: bool) -> str:
        """`OrderFlowCore.submit` of a strategy's order (`request`: the engine's `OrderRequest`, whose fields
        the flow reads), placed in this simulator in the same call (as `submit`), after `catch_up(ts_ns,
        feed)`; its client order id."""
        at, opg = ts_ns + self._entry_ns, request.time_in_force == "opg"
        to = self._placements.get(request.symbol)
        if to is None or opg or not to[3] <= at < to[4]:  # the symbol's first order of the session
            to = (self._core, self._code(request.symbol), self.slippage, *self._session_of(at, opg))
            if not opg:
                self._placements[request.symbol] = to
        return flow.submit(strategy, book, leg, request, ts_ns, reference, price, (*to, feed))

    def cancel(self, client_order_id: str, ts_ns: int) -> bool:
        """Ask to cancel at `ts_ns` (effective after the entry latency: the order may fill meanwhile).
        False, with no event, when no open order has that id."""
        return self._core.cancel(client_order_id, ts_ns)

    def replace(self, client_order_id: str, new_client_order_id: str, ts_ns: int, *, qty: float | None = None,
                limit_price: float | None = None, stop_price: float | None = None) -> bool:
        """Ask to replace an open order by a new one with the same symbol, side, type and tif (None keeps
        a price; qty defaults to what the old order has left). Effective after the entry latency: the old
        order then ends "replaced" and the new one starts; if the old one closed first, the new one is
        rejected. False, with no event, when no open order has that id."""
        slot = self._core.slot(client_order_id)
        if slot is None:
            return False
        old = self.order(client_order_id)
        assert old is not None
        new_qty = qty if qty is not None else old["qty"] - old["filled_qty"]
        impact = self._core.impact_bps(self.slippage, old["symbol"], old["side"], float(new_qty), ts_ns)
        return self._core.replace(
            client_order_id, new_client_order_id, ts_ns, None if qty is None else float(qty),
            None if limit_price is None else float(limit_price),
            None if stop_price is None else float(stop_price), impact,
        ) is not None

    def advance(self, ts_ns: int) -> None:
        """All market data up to `ts_ns` is fed: fire acks, activations, cancels, replaces, auctions and
        expiries due by then."""
        self._core.advance(ts_ns)

    # ------------------------------------------------------------------------------ market data
    def _arrays(self, frame: pl.DataFrame, columns: tuple[str, ...], what: str) -> list[np.ndarray]:
        """Symbol codes, ts (int64 ns) and the float64 `columns` of a market-data frame (no copy when the
        frame already has the schema's dtypes)."""
        missing = [c for c in ("symbol", "ts", *columns) if c not in frame.columns]
        if missing:
            raise DataError(f"{what} frame: missing columns {missing}")
        ts = frame.get_column("ts")
        if ts.null_count():
            raise DataError(f"{what} frame: column 'ts' has {ts.null_count()} nulls")
        try:
            out = [self.symbol_codes(_as(frame.get_column("symbol"), pl.String)),
                   _as(ts, TS).to_numpy().view(np.int64)]
            out += [_as(frame.get_column(c), pl.Float64).to_numpy() for c in columns]
        except pl.exceptions.PolarsError as e:
            raise DataError(f"{what} frame: {str(e).splitlines()[0]}") from e
        return out

    def on_quotes(self, frame: pl.DataFrame) -> None:
        """Trade open orders against QUOTE_SCHEMA rows (any symbols, sorted by ts)."""
        self.on_quote_arrays(*self._arrays(frame, ("bid", "ask", "bid_size", "ask_size"), "quotes"))

    def on_quote_arrays(self, codes: np.ndarray, ts: np.ndarray, bid: np.ndarray, ask: np.ndarray,
                        bid_size: np.ndarray, ask_size: np.ndarray) -> None:
        """`on_quotes` over numpy columns; `codes` from `symbol_codes` (the venue's path, no frame)."""
        try:
            self._core.on_quotes(codes, ts, bid, ask, bid_size, ask_size)
        except ValueError as e:
            raise DataError(f"quotes: {e}") from None

    def on_bars(self, frame: pl.DataFrame, every_ns: int) -> None:
        """Trade open orders against BAR_SCHEMA rows (`ts` = bar start, bars of `every_ns`, sorted by ts);
        then time moves to the end of the last bar (all of them have closed)."""
        self.on_bar_arrays(*self._arrays(frame, ("open", "high", "low", "close", "volume"), "bars"),
                           every_ns=every_ns)

    def on_bar_arrays(self, codes: np.ndarray, ts: np.ndarray, open: np.ndarray, high: np.ndarray,
                      low: np.ndarray, close: np.ndarray, volume: np.ndarray, *, every_ns: int) -> None:
        """`on_bars` over numpy columns (`codes` from `symbol_codes`): no frame to take apart, for callers
        that feed one small cross-section per bar time and hold the arrays already."""
        try:
            self._core.on_bars(codes, ts, open, high, low, close, volume, every_ns)
        except ValueError as e:
            raise DataError(f"bars: {e}") from None

    def load_bar_arrays(self, codes: np.ndarray, ts: np.ndarray, open: np.ndarray, high: np.ndarray,
                        low: np.ndarray, close: np.ndarray, volume: np.ndarray, *, every_ns: int) -> None:
        """Hold a batch of bar rows (as `on_bar_arrays` takes them) for `on_loaded_bars`: a caller that
        feeds a session a bar time at a time hands its columns over once."""
        self._core.load_bars(codes, ts, open, high, low, close, volume, every_ns)

    def on_loaded_bars(self, start: int, end: int) -> None:
        """`on_bar_arrays` of rows `start:end` of the loaded batch."""
        try:
            self._core.on_loaded_bars(start, end)
        except ValueError as e:
            raise DataError(f"bars: {e}") from None

    def catch_up(self, now_ns: int, feed: bool) -> None:
        """`on_loaded_bars` of the loaded batch's bar times that have closed by `now_ns` and were not fed
        yet; with `feed` false (no order open: nothing to match) they are passed over, never fed. A
        DataError for bars the simulator refuses."""
        self._core.catch_up(now_ns, feed)

    # ------------------------------------------------------------------------------ results
    def drain(self) -> pl.DataFrame:
        """Events since the last drain (FILL_EVENT_SCHEMA), in time order."""
        ts, _slot, sym, side, kind, qty, price, fee, filled, leaves, ids, reasons = self.drain_by_time()
        return pl.DataFrame({
            "ts": _ts(ts), "client_order_id": pl.Series(ids, dtype=pl.String),
            "symbol": _names(sym, self._names), "side": _names(side, FillSimulatorCore.SIDES),
            "event": _names(kind, FillSimulatorCore.EVENT_KINDS), "qty": qty, "price": price, "fee": fee,
            "filled_qty": filled, "leaves_qty": leaves, "reason": pl.Series(reasons, dtype=pl.String),
        }, schema=FILL_EVENT_SCHEMA)

    def drain_by_time(self) -> tuple[Any, ...]:
        """`drain`'s events as the core's columns, in time order (stable: events of one time keep the core's
        order; the core's one rule, `drain_by_time`, that every reader of the events applies them in): ts,
        slot, symbol code (see `symbol_codes`), side (index into FillSimulatorCore.SIDES), kind (into
        EVENT_KINDS), qty, price, fee, filled_qty, leaves_qty as numpy arrays; client order ids and reasons
        as lists."""
        return tuple(self._core.drain())

    def drain_updates(self, names: list[str], make: Callable[[tuple[Any, ...]], T]) -> tuple[list[T], int]:
        """`drain_by_time`'s events as `make((ts, client_order_id, symbol, side, event, qty, price, fee,
        filled_qty, leaves_qty, reason))` each (symbol `names[code]`, "" past its end), and how many of
        them end an order: one call, no column per field."""
        return self._core.drain_updates(names, make)

    def poll_into(self, flow: OrderFlowCore, now_ns: int, feed: bool) -> tuple[int, int]:
        """`catch_up(now_ns, feed)`, `advance(now_ns)` and `drain_by_time`'s events booked by the engine's
        order flow, in one call (`OrderFlowCore.poll_simulator`, no Python object per event): how many
        events, and how many of them end an order."""
        return flow.poll_simulator(self._core, now_ns, feed)

    def filled_shares(self) -> dict[str, float]:
        """Signed shares filled per symbol (buys +, sells -) over every order, for the symbols with a fill
        that does not net to zero."""
        held = self._core.filled_shares()
        return {self._names[k]: float(held[k]) for k in np.flatnonzero(held)}

    def orders(self, *, open_only: bool = False) -> pl.DataFrame:
        """Every order (or only open ones) in submission order (ORDER_SCHEMA); status is one of
        pending_new, accepted, partially_filled (open), filled, canceled, expired, rejected, replaced."""
        (_slot, sym, side, otype, tif, qty, filled, limit, stop, status, avg, fees, submitted, expires,
         ids) = self._core.orders(open_only)
        core = FillSimulatorCore
        frame = pl.DataFrame({
            "client_order_id": pl.Series(ids, dtype=pl.String), "symbol": _names(sym, self._names),
            "side": _names(side, core.SIDES), "type": _names(otype, core.TYPES),
            "tif": _names(tif, core.TIFS),
            "qty": qty, "filled_qty": filled, "limit_price": limit, "stop_price": stop,
            "status": _names(status, core.STATUSES), "filled_avg_price": avg, "fees": fees,
            "submitted_at": _ts(submitted), "expires_at": _ts(expires),
        }, schema=ORDER_SCHEMA)
        return frame.with_columns(
            pl.col("limit_price", "stop_price", "filled_avg_price").fill_nan(None),
            pl.when(pl.Series(expires) >= 0).then(pl.col("expires_at")),  # -1: gtc, no expiry
        )

    def open_orders(self) -> pl.DataFrame:
        """Orders still working (pending_new, accepted, partially_filled)."""
        return self.orders(open_only=True)

    def order(self, client_order_id: str) -> dict[str, Any] | None:
        """One order as a dict of ORDER_SCHEMA fields (times as epoch ns; None for absent prices and
        for a gtc expiry), or None for an unknown id."""
        o = self._core.order(client_order_id)
        if o is not None:
            o["symbol"] = self._names[o["symbol"]]
        return o


__all__ = ["FILL_EVENT_SCHEMA", "ORDER_SCHEMA", "FillSettings", "FillSimulator"]
