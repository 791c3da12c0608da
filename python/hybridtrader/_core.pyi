"""Type stubs for the Rust extension `hybridtrader._core`."""

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal, Self, TypeVar, final

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

from hybridtrader.engine.events import OrderUpdate

_T = TypeVar("_T")

__all__ = [
    "BarAggregatorCore",
    "ExposureCore",
    "FillSimulatorCore",
    "FrameDecoder",
    "LedgerCore",
    "Order",
    "OrderFlowCore",
    "OrderRequest",
    "Position",
    "SlidingWindowLimiter",
    "SlippageModelCore",
    "__version__",
    "aggregate_bars",
    "aggregate_bars_hashed",
    "aggregate_bars_runs",
    "bar_codes_from_hashes",
    "bar_order",
    "bar_view_runs",
    "barrier_exits",
    "client_order_id",
    "ema_columns",
    "lightgbm_probabilities",
    "marked_values",
    "order_columns",
    "reversion_exits",
    "seeded_ewm",
]

__version__: str

# ids from `BarAggregator.intern` (fastest) or the symbols as strings
_SymbolColumn = npt.NDArray[np.integer] | npt.NDArray[np.str_] | npt.NDArray[np.object_] | Sequence[str]

@disjoint_base
class SlippageModelCore:
    """Slippage model core; `hybridtrader.SlippageModel` subclasses it and builds it from the config.

    cost_bps = min(max_slippage_bps, spread_bps(symbol, time of day) / 2
                   + coef * daily_vol_bps * (qty / adv_shares) ** impact_exponent)

    `ts` arguments: None (now), epoch ns (int) or a timezone-aware datetime. Time of day is minutes since
    09:30 New York (US DST rules applied to the UTC timestamp), in buckets of `bucket_minutes`; times outside
    the regular session use the nearest bucket. Unknown symbols and unlearned values use the pooled prior.
    """

    def __new__(
        cls,
        *,
        max_slippage_bps: float = 20.0,
        impact_exponent: float = 0.6,
        prior_impact_coef: float = 0.5,
        prior_spread_bps: float = 5.0,
        prior_adv_shares: float = 1_000_000.0,
        prior_daily_vol_bps: float = 200.0,
        learning_rate: float = 0.01,
        prior_strength_fills: float = 5.0,
        spread_learning_rate: float = 0.05,
        bucket_minutes: int = 30,
    ) -> SlippageModelCore: ...
    def forecast_slippage(
        self, symbol: str, side: str, qty: float, price: float, ts: int | datetime | None = None
    ) -> float:
        """Expected cost in bps of a marketable order of `qty` shares; ValueError on a bad side/qty/price."""
    def forecast_spread(self, symbol: str, ts: int | datetime | None = None) -> float:
        """Expected spread in bps at the time of day of `ts`."""
    def forecast_codes(
        self,
        names: list[str],
        codes: npt.NDArray[np.uint32],
        qty: npt.NDArray[np.float64],
        price: npt.NDArray[np.float64],
        ts: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float64]:
        """Batch forecast, row i for symbol names[codes[i]]; the GIL is released."""
    def update_fill(
        self,
        symbol: str,
        side: str,
        qty: float,
        arrival_price: float,
        fill_price: float,
        ts: int | datetime | None = None,
    ) -> tuple[float, float, float]:
        """Learn one fill; returns (cost_bps, half_spread_bps, participation_term_bps)."""
    def update_fills(
        self,
        names: list[str],
        codes: npt.NDArray[np.uint32],
        buy: npt.NDArray[np.bool_],
        qty: npt.NDArray[np.float64],
        arrival_price: npt.NDArray[np.float64],
        fill_price: npt.NDArray[np.float64],
        ts: npt.NDArray[np.int64],
    ) -> int:
        """Learn fills in row order; returns the number learned."""
    def update_spreads(
        self,
        names: list[str],
        codes: npt.NDArray[np.uint32],
        ts: npt.NDArray[np.int64],
        spread_bps: npt.NDArray[np.float64],
    ) -> int:
        """Learn quote-bar mean spreads (bps) into the time-of-day profiles, in row order."""
    def set_daily_stats(
        self, symbol: str, adv_shares: float | None = None, daily_vol_bps: float | None = None
    ) -> None:
        """Set a symbol's ADV (shares) and/or daily volatility (bps); the pooled medians follow."""
    def time_buckets(self, ts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Time-of-day bucket of each epoch-ns timestamp."""
    def symbol_params(self, symbol: str) -> dict[str, object]:
        """known, impact_coef, adv_shares, daily_vol_bps, spread_bps (per bucket), n_fills — pooled
        values where the symbol has learned nothing."""
    @property
    def symbols(self) -> list[str]: ...
    @property
    def n_buckets(self) -> int: ...
    @property
    def max_slippage_bps(self) -> float: ...
    @property
    def impact_exponent(self) -> float: ...
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the learned state as JSON atomically (temp file + fsync + rename)."""
    def load(self, path: str | os.PathLike[str]) -> None:
        """Replace the learned state; ValueError naming the file if corrupt, of a future format_version or
        learned with another impact_exponent / bucket_minutes; FileNotFoundError if missing."""
    def to_json(self) -> str:
        """The learned state as the JSON text `save` writes."""
    def load_json(self, text: str, source: str = "<json>") -> None:
        """Replace the learned state by JSON text from `to_json`; errors as for `load`."""
@final
class FillSimulatorCore:
    """Rust core of `hybridtrader.execution.fills.FillSimulator` (rules in that module's docstring).

    Symbols are uint32 codes owned by the caller; times int64 UTC ns. Codes in `drain`/`orders` index the
    class attributes below (code len(names) marks an unparsed value of a rejected request).
    """

    EVENT_KINDS: ClassVar[list[str]]
    STATUSES: ClassVar[list[str]]
    SIDES: ClassVar[list[str]]
    TYPES: ClassVar[list[str]]
    TIFS: ClassVar[list[str]]

    def __new__(
        cls,
        *,
        commission_per_share: float,
        commission_min: float,
        sec_fee_rate: float,
        taf_per_share: float,
        taf_cap: float,
        entry_latency_ns: int,
        ack_latency_ns: int,
        bar_participation: float,
    ) -> FillSimulatorCore: ...
    def submit(
        self,
        client_order_id: str,
        symbol: int,
        name: str,
        side: str,
        order_type: str,
        tif: str,
        qty: float,
        ts_ns: int,
        limit_price: float | None,
        stop_price: float | None,
        slippage: SlippageModelCore | None,
        session_open_ns: int,
        session_close_ns: int,
    ) -> int:
        """The new order's slot; an invalid request gives a "rejected" event. Impact from `impact_bps`."""
    @staticmethod
    def impact_bps(
        slippage: SlippageModelCore | None, symbol: str, side: str, qty: float, ts_ns: int
    ) -> float:
        """The slippage model's cost forecast less half its spread forecast, >= 0 (bps); 0 without a model
        or for an invalid side or quantity."""
    def cancel(self, client_order_id: str, ts_ns: int) -> bool: ...
    def replace(
        self,
        client_order_id: str,
        new_client_order_id: str,
        ts_ns: int,
        qty: float | None,
        limit_price: float | None,
        stop_price: float | None,
        impact_bps: float,
    ) -> int | None: ...
    def advance(self, ts_ns: int) -> None: ...
    def fill_fee(self, side: str, before: float, qty: float, price: float) -> float:
        """Fees (USD) of one fill of `qty` at `price` on an order that had filled `before` shares."""
    def slot(self, client_order_id: str) -> int | None: ...
    def order(self, client_order_id: str) -> dict[str, Any] | None:
        """One order's fields (symbol as its code, times as ns), or None."""
    def last_quote(self, symbol: int) -> tuple[float, float] | None: ...
    def on_quotes(
        self,
        symbols: npt.NDArray[np.uint32],
        ts: npt.NDArray[np.int64],
        bid: npt.NDArray[np.float64],
        ask: npt.NDArray[np.float64],
        bid_size: npt.NDArray[np.float64],
        ask_size: npt.NDArray[np.float64],
    ) -> None:
        """ValueError on unequal lengths or unsorted ts; the GIL is released."""
    def on_bars(
        self,
        symbols: npt.NDArray[np.uint32],
        ts: npt.NDArray[np.int64],
        open: npt.NDArray[np.float64],
        high: npt.NDArray[np.float64],
        low: npt.NDArray[np.float64],
        close: npt.NDArray[np.float64],
        volume: npt.NDArray[np.float64],
        every_ns: int,
    ) -> None: ...
    def load_bars(
        self,
        symbols: npt.NDArray[np.uint32],
        ts: npt.NDArray[np.int64],
        open: npt.NDArray[np.float64],
        high: npt.NDArray[np.float64],
        low: npt.NDArray[np.float64],
        close: npt.NDArray[np.float64],
        volume: npt.NDArray[np.float64],
        every_ns: int,
    ) -> None:
        """Hold these bar rows (copied) for `on_loaded_bars`, replacing the last batch held."""
    def on_loaded_bars(self, start: int, end: int) -> None:
        """`on_bars` of rows start..end of the held batch; ValueError as `on_bars`, or out of range."""
    def catch_up(self, now_ns: int, feed: bool) -> None:
        """`on_loaded_bars` of the held bar times closed by `now_ns` not fed yet (not `feed`: passed over)."""
    def drain(self) -> tuple[Any, ...]:
        """Events in time order (stable): (ts, slot, symbol, side, kind, qty, price, fee, filled, leaves)
        arrays, ids, reasons."""
    def drain_updates(self, names: list[str], make: Callable[[tuple[Any, ...]], _T]) -> tuple[list[_T], int]:
        """Events in time order (stable), each make((ts, id, names[symbol] or "", side, kind, qty, price,
        fee, filled, leaves, reason)), and how many end an order."""
    def filled_shares(self) -> npt.NDArray[np.float64]:
        """Signed shares filled per symbol code (buys +, sells -), over every order; as long as the highest
        code with a fill."""
    def orders(self, open_only: bool = True) -> tuple[Any, ...]:
        """(slot, symbol, side, type, tif, qty, filled, limit, stop, status, avg_price, fees, submitted,
        expires) arrays and the ids; NaN for absent prices, expires -1 for gtc."""

@final
class Position:
    """One strategy's position in one symbol (average cost; rules in rust/src/ledger.rs). Read-only: fills
    change it through the ledger."""

    @property
    def qty(self) -> float: ...
    @property
    def avg_price(self) -> float: ...
    @property
    def realized(self) -> float: ...
    @property
    def fees(self) -> float: ...
    @property
    def bought(self) -> float:
        """Notional bought, for turnover."""
    @property
    def sold(self) -> float: ...

@disjoint_base
class LedgerCore:
    """Cash and positions from fills: `book` (strategy, symbol) -> Position, `net` symbol -> the account's
    shares (nonzero only), `marks` symbol -> last price; `held_changes` counts the times a symbol entered
    or left `net`. Use `hybridtrader.portfolio.ledger.Ledger` (a subclass with the reads)."""

    def __new__(cls, cash: float) -> Self:
        """DataError unless `cash` is a positive finite number."""
    @property
    def start_cash(self) -> float: ...
    @property
    def cash(self) -> float: ...
    @property
    def book(self) -> dict[tuple[str, str], Position]: ...
    @property
    def net(self) -> dict[str, float]: ...
    @property
    def marks(self) -> dict[str, float]: ...
    @property
    def held_changes(self) -> int: ...
    def apply_fill(
        self, strategy: str, symbol: str, side: str, qty: float, price: float, fee: float
    ) -> float:
        """Book one fill; the P&L it realised (before fees). DataError for a side other than "buy" or
        "sell", qty <= 0, a price not positive and finite, or fee < 0."""

def marked_values(
    shares: npt.NDArray[np.float64], prices: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Net and gross value of `shares` (one per symbol) at each row of `prices` (bar time x symbol), each
    row summed as numpy sums it (`np.add.reduce`, bit for bit). DataError when the widths differ."""

@final
class OrderRequest:
    """What a strategy asks for; immutable, validated on construction (ConfigError naming the field).
    `hybridtrader.engine.orders` states the rules."""

    ORDER_TYPES: ClassVar[list[str]]
    TIME_IN_FORCE: ClassVar[list[str]]
    def __new__(
        cls,
        symbol: str,
        side: str,
        qty: float,
        type: str = "market",
        time_in_force: str = "day",
        limit_price: float | None = None,
        stop_price: float | None = None,
    ) -> OrderRequest: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> str: ...
    @property
    def qty(self) -> float: ...
    @property
    def type(self) -> str: ...
    @property
    def time_in_force(self) -> str: ...
    @property
    def limit_price(self) -> float | None: ...
    @property
    def stop_price(self) -> float | None: ...
    @property
    def sign(self) -> int:
        """+1 buy, -1 sell."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, ...]: ...

@final
class Order:
    """One order the engine sent, and what the broker has said about it since (`hybridtrader.engine.orders`
    describes the state machine; rules in rust/src/orders.rs). Read-only but for `apply`."""

    def __new__(
        cls,
        client_order_id: str,
        strategy: str,
        book: str,
        leg: str,
        request: OrderRequest,
        decision_ns: int,
        decision_price: float,
        forecast_bps: float,
        status: str = "new",
        filled_qty: float = 0.0,
        notional: float = 0.0,
        fees: float = 0.0,
        updated_ns: int = 0,
        reason: str | None = None,
        history: list[str] | None = None,
    ) -> Order:
        """ValueError for an unknown status or update kind in `history`."""
    @property
    def client_order_id(self) -> str: ...
    @property
    def strategy(self) -> str: ...
    @property
    def book(self) -> str: ...
    @property
    def leg(self) -> str: ...
    @property
    def request(self) -> OrderRequest: ...
    @property
    def symbol(self) -> str:
        """`request.symbol`."""
    @property
    def sign(self) -> int:
        """`request.sign`: +1 buy, -1 sell."""
    @property
    def decision_ns(self) -> int: ...
    @property
    def decision_price(self) -> float: ...
    @property
    def forecast_bps(self) -> float: ...
    @property
    def reason(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def filled_qty(self) -> float: ...
    @property
    def notional(self) -> float:
        """Sum of fill qty x price."""
    @property
    def fees(self) -> float: ...
    @property
    def updated_ns(self) -> int: ...
    @property
    def history(self) -> list[str]:
        """The kinds of the updates applied, in order (a new list)."""
    @property
    def is_open(self) -> bool: ...
    @property
    def leaves_qty(self) -> float: ...
    @property
    def avg_price(self) -> float: ...
    def apply(self, update: OrderUpdate) -> float:
        """Move to the state `update` reports; StateError when the transition or the quantities are illegal
        (the order is left unchanged). Returns the change of `leaves_qty` (after - before)."""
    def __eq__(self, value: object, /) -> bool: ...

@final
class OrderFlowCore:
    """The engine's order flow (rust/src/py/flow.rs): orders sent, and broker updates booked into the
    ledger, the exposure manager (filled + pending shares per (book, symbol)), the slippage model, the
    batch's account shares and the fill rows (columns)."""

    def __new__(
        cls,
        ledger: LedgerCore,
        exposure: ExposureCore,
        slippage: SlippageModelCore,
        price: Callable[[str], float],
    ) -> OrderFlowCore:
        """`price(symbol)`: the engine's current price (NaN: none), at which pending shares are valued."""
    @property
    def orders(self) -> dict[str, Order]:
        """Client order id -> order, every order sent and not yet forgotten by the engine."""
    @property
    def open(self) -> dict[str, Order]:
        """The open ones."""
    @property
    def open_by(self) -> dict[tuple[str, str], dict[str, Order]]:
        """(strategy, symbol) -> the open ones by id, in the order sent."""
    @property
    def sent(self) -> dict[str, int]:
        """Client order id -> rank in the order of sending."""
    @property
    def repricing(self) -> dict[tuple[str, str], Order] | None:
        """When a dict: each (book, symbol) whose pending exposure moved -> an order of it."""
    @repricing.setter
    def repricing(self, value: dict[tuple[str, str], Order] | None) -> None: ...
    @property
    def n_fills(self) -> int:
        """Fills booked so far (since `take_fills`)."""
    def start_batch(
        self,
        index: dict[str, int],
        pos: npt.NDArray[np.float64],
        closes: npt.NDArray[np.float64] | None = None,
    ) -> None:
        """A batch's symbol -> column and the account's shares per column, which fills move from now on;
        with its closes (bar time x column), prices come from them (`price`)."""
    @property
    def row(self) -> int:
        """The bar time of the batch the engine is at (a row of the closes)."""
    @row.setter
    def row(self, value: int) -> None: ...
    def price(self, symbol: str) -> float:
        """With a batch's closes: the close at bar time `row`, else the ledger's mark, else NaN; without:
        the `price` given at construction."""
    def submit(
        self,
        strategy: str,
        book: str,
        leg: str,
        request: OrderRequest,
        now_ns: int,
        reference: float,
        price: float,
        to: tuple[FillSimulatorCore, int, SlippageModelCore | None, int, int, bool] | None = None,
    ) -> str:
        """Make the client order id, forecast and order; record it as sent with its shares pending at
        `price` (NaN: `reference`). StateError when the id was sent already. With `to` = (simulator, the
        symbol's code, impact model, session open, session close, orders open there), also place it in that
        simulator, after its `catch_up(now_ns, orders open)`."""
    def send(self, order: Order) -> None:
        """Record an order as sent: by id, open, ranked, its shares pending at the current price."""
    def add_pending(self, order: Order, delta: float, price: float | None = None) -> None:
        """The order's pending shares moved by `delta`, valued at `price` (None: the current price; NaN:
        the order's decision price)."""
    def open_orders(self, strategy: str, symbol: str) -> list[Order]:
        """The strategy's open orders in the symbol, in the order sent (a new list)."""
    def open_shares(self, strategy: str, symbol: str) -> float:
        """Signed shares the strategy's open orders in the symbol have still to fill, summed in the order
        sent."""
    def apply(self, update: OrderUpdate) -> Order:
        """Book one update; its order. StateError for an unknown order or an illegal update."""
    def poll_simulator(self, sim: FillSimulatorCore, now_ns: int, feed: bool) -> tuple[int, int]:
        """The simulator's `catch_up(now_ns, feed)` and `advance(now_ns)`, then `apply` of its events since
        its last drain, in time order: (events, ended orders)."""
    def ranked(self) -> tuple[list[Order], npt.NDArray[np.int64]]:
        """The orders sent and not yet taken, in the order sent, and their ranks."""
    def take_final(self, now_ns: int) -> tuple[list[Order], npt.NDArray[np.int64]]:
        """`ranked()` of the closed orders decided before `now_ns`, which are forgotten."""
    def fill_columns(self, start: int = 0) -> tuple[Any, ...]:
        """Fills from the `start`-th on: ts (int64), (client_order_id, strategy, book, symbol, side)
        lists, (qty, price, fee, realized_pnl, decision_price, forecast_bps) float64 arrays, signs
        (int64)."""
    def take_fills(self) -> tuple[Any, ...]:
        """`fill_columns()`, and the fills forgotten."""

def client_order_id(strategy: str, symbol: str, decision_ns: int, leg: str) -> str:
    """The id "ht-" + blake2b-128 hex of f"{strategy}\\x1f{symbol}\\x1f{decision_ns}\\x1f{leg}" (UTF-8): the
    same order intent gives the same id in every run and process."""

def order_columns(
    orders: Sequence[Order],
) -> tuple[
    tuple[list[Any], ...],
    tuple[npt.NDArray[np.float64], ...],
    tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
    npt.NDArray[np.int64],
]:
    """The columns of `orders` for the engine's orders frame, in one pass: (client_order_id, strategy,
    book, leg, status, reason, symbol, side, type, time_in_force, limit_price, stop_price) lists; (qty,
    decision_price, forecast_bps, filled_qty, notional, fees); (decision_ns, updated_ns); signs."""

@disjoint_base
class SlidingWindowLimiter:
    """Exact sliding-window rate limiter over one or more `(limit, window_seconds)` rates, per key, with
    weights: a request of weight w is admitted iff every rate's window `(now - window, now]` holds at most
    `limit - w`. Thread-safe. Its clock is monotonic nanoseconds since creation (`now_ns()`); the `*_at`
    methods take that time explicitly. Bad rates or weights (< 1, or above the smallest limit) raise
    ValueError naming them. `hybridtrader.RateLimiter` subclasses it with config and retries."""

    def __new__(cls, rates: list[tuple[int, float]]) -> SlidingWindowLimiter: ...
    @property
    def rates(self) -> list[tuple[int, float]]: ...
    def now_ns(self) -> int:
        """The limiter's clock: monotonic nanoseconds since it was created."""
    def try_acquire(self, key: str | None = None, weight: int = 1) -> bool:
        """Admit `weight` on `key` (None: "default") now if every window has room; never blocks."""
    def try_acquire_stamped(self, key: str | None = None, weight: int = 1) -> tuple[bool, int]:
        """`try_acquire` plus the limiter time (ns) the decision was taken at."""
    def try_acquire_at(self, now_ns: int, key: str | None = None, weight: int = 1) -> bool:
        """`try_acquire` at an explicit limiter time (earlier than the key's last time counts as that)."""
    def wait_time(self, key: str | None = None, weight: int = 1) -> float:
        """Seconds until `weight` would be admitted if nothing else is admitted meanwhile (0.0: now)."""
    def wait_ns_at(self, now_ns: int, key: str | None = None, weight: int = 1) -> int:
        """`wait_time` at an explicit limiter time, in nanoseconds."""
    def poll(self, key: str | None = None, weight: int = 1) -> float:
        """Admit now and return 0.0, or refuse and return the seconds to wait (> 0)."""
    def acquire(self, key: str | None = None, weight: int = 1, timeout: float | None = None) -> bool:
        """Block (GIL released) until admitted; False at once when the exact wait exceeds the timeout."""
    def stats(self) -> dict[str, object]:
        """admitted, rejected, admitted_weight, rates, and per key: the counters and `in_window` weights."""

@disjoint_base
class ExposureCore:
    """Exposure manager core: per-book caps (gross, net, symbol, sector as % of equity; order notional;
    open positions) checked in O(1) against running integer-cent sums; trading state ACTIVE / REDUCING /
    HALTED; circuit breaker. Thread-safe. Use `hybridtrader.ExposureManager` (a subclass built from the
    config); see `rust/src/exposure.rs` for the decision rules."""

    reason_codes: ClassVar[list[str]]
    def __new__(
        cls,
        books: list[tuple[str, float, float, float, float, float, int]],
        max_daily_loss_pct: float,
        max_drawdown_pct: float,
        reduce_daily_loss_pct: float | None = None,
        reduce_drawdown_pct: float | None = None,
        default_shortable: bool = True,
    ) -> ExposureCore:
        """`books`: (name, max_gross_pct, max_net_pct, max_symbol_pct, max_sector_pct, max_order_notional,
        max_open_positions). ValueError for a non-positive cap or a duplicate book."""
    @property
    def books(self) -> list[str]: ...
    def check_order(
        self, symbol: str, side: str, qty: float, price: float, book: str = "intraday"
    ) -> tuple[bool, str]:
        """`(allowed, reason)`, reason "ok" when allowed. ValueError for a bad side, qty <= 0, price <= 0,
        NaN/inf or an unknown book."""
    def encode_symbols(
        self, values: Iterable[str] | npt.NDArray[np.uint32]
    ) -> tuple[list[str], npt.NDArray[np.uint32]]: ...
    def check_batch_codes(
        self,
        book: str,
        names: list[str],
        codes: npt.NDArray[np.uint32],
        signs: npt.NDArray[np.int8],
        qtys: npt.NDArray[np.float64],
        prices: npt.NDArray[np.float64],
        sequential: bool,
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.uint8]]: ...
    def check_exposure_values(
        self,
        book: str,
        equity: float,
        values: list[float],
        existing: int | None,
        order_value: float,
        symbol: str = "order",
    ) -> tuple[bool, str]: ...
    def update_position(self, book: str, symbol: str, qty: float, price: float) -> None:
        """Set the position to `qty` shares (signed, negative = short) valued at `price`."""
    def apply_fill(self, book: str, symbol: str, side: str, qty: float, price: float) -> None:
        """Change the position by +qty (buy) / -qty (sell), valued at `price`."""
    def mark_price(self, symbol: str, price: float) -> None:
        """Re-mark every book's position in `symbol`."""
    def mark_prices(self, symbols: list[str], prices: npt.NDArray[np.float64]) -> None:
        """`mark_price` for each (symbol, price) pair in one call; all pairs are checked first, so an
        error (naming the symbol) changes nothing."""
    def refusal(
        self,
        symbol: str,
        side: str,
        qty: float,
        price: float,
        book: str = "intraday",
        count_in: dict[str, int] | None = None,
    ) -> str | None:
        """`check_order` as a count key: None when allowed, else "exposure: " and the reason's first two
        words ("exposure: gross exposure"); with `count_in`, a refusal also adds 1 to `count_in[key]`."""
    def hold(self, symbols: list[str], columns: list[int]) -> None:
        """Remember the symbols `mark_row` marks and their columns in its rows (ids looked up here)."""
    def mark_row(self, row: npt.NDArray[np.float64]) -> None:
        """`mark_prices` of the held symbols at their columns of `row` (a bar time's closes); all pairs are
        checked first."""
    def max_allowed_qty(self, symbol: str, side: str, qty: int, price: float, book: str = "intraday") -> int:
        """The largest whole quantity <= qty that `check_order` allows (0 when none), by a binary search:
        exact for an order that opens or adds to a position (its allowed quantities form a prefix)."""
    @property
    def equity(self) -> float: ...
    def set_equity(self, equity: float) -> None: ...
    def set_sector(self, symbol: str, sector: str | None) -> None:
        """ValueError for an empty symbol."""
    def set_sectors(self, mapping: Mapping[str, str | None]) -> None: ...
    def sector_of(self, symbol: str) -> str | None: ...
    def set_shortable(self, symbol: str, shortable: bool) -> None: ...
    def is_shortable(self, symbol: str) -> bool: ...
    def position(self, book: str, symbol: str) -> tuple[float, float]:
        """`(qty, price)`, `(0.0, 0.0)` when flat."""
    def positions(self, book: str) -> list[tuple[str, float, float]]: ...
    def metrics(self, book: str) -> dict[str, float]:
        """gross, net (account currency), gross_pct, net_pct (% of equity, |net|), open_positions."""
    def sector_exposure(self, book: str, sector: str) -> float: ...
    def clear_positions(self) -> None: ...
    @property
    def state(self) -> str:
        """"ACTIVE", "REDUCING" or "HALTED"."""
    @property
    def state_reason(self) -> str: ...
    @property
    def state_since_ns(self) -> int: ...
    def set_state(self, state: str, reason: str, ts_ns: int | None = None) -> None: ...
    def start_session_day(self, day: int, equity: float, ts_ns: int | None = None) -> None: ...
    @property
    def session_day(self) -> int | None: ...
    @property
    def session_start_equity(self) -> float: ...
    @property
    def peak_equity(self) -> float: ...
    def update_breaker(self, equity: float, ts_ns: int | None = None) -> bool: ...
    def update_breaker_path(
        self, equities: npt.NDArray[np.float64], ts_ns: npt.NDArray[np.int64], stop_at_halt: bool
    ) -> int:
        """`update_breaker` at each (equities[k], ts_ns[k]) in turn; with `stop_at_halt`, stops after the
        first step that finds the manager HALTED. The number of steps taken."""
    def reset_at(self, ts_ns: int | None = None) -> None: ...
    def restore_breaker(
        self,
        day: int | None,
        session_start_equity: float,
        peak_equity: float,
        state: str,
        reason: str,
        since_ns: int,
    ) -> None: ...

_TradeBar = tuple[str, int, float, float, float, float, float, float, int]
"""(symbol, ts ns, open, high, low, close, volume, vwap, trades)."""

_QuoteBar = tuple[str, int, float, float, float, float, float, float, float, float, int]
"""(symbol, ts ns, open, high, low, close (mid), bid, ask, spread_bps_mean, spread_bps_last, quotes)."""

@disjoint_base
class BarAggregatorCore:
    """The Rust streaming bar engine; `hybridtrader.BarAggregator` (in `hybridtrader.market.bars`) extends
    it with the methods that return Polars frames and documents the rules."""

    def __new__(
        cls,
        *,
        every: str | int | None = None,
        ticks: int | None = None,
        volume: float | None = None,
        dollars: float | None = None,
        origin: int = 0,
        source: Literal["trades", "quotes"] = "trades",
    ) -> Self: ...
    @property
    def source(self) -> Literal["trades", "quotes"]:
        """ "trades" or "quotes"."""
    @property
    def symbols(self) -> list[str]:
        """Known symbols; position = id."""
    def intern(self, names: Iterable[str]) -> npt.NDArray[np.uint32]:
        """Ids of ``names`` (new symbols get new ids), for the fast integer-id path of `push_many`."""
    def push(self, symbol: str, ts: int, price: float, size: float) -> tuple[_TradeBar, ...]:
        """Adds one trade; returns the bars it completed (usually the empty tuple). About 100 ns."""
    def push_quote(self, symbol: str, ts: int, bid: float, ask: float) -> tuple[_QuoteBar, ...]:
        """Adds one quote; returns the quote bars it completed (usually the empty tuple)."""
    def push_many_columns(
        self,
        symbols: _SymbolColumn,
        ts: npt.ArrayLike,
        price: npt.ArrayLike,
        size: npt.ArrayLike,
    ) -> tuple[Any, ...] | None:
        """Adds trades in order (same as `push` for each, GIL released) and returns the bars they completed
        (and any waiting from `feed_many`) as columns, in completion order: (symbols list, then the bar
        schema's columns after ``symbol``: for trades ts int64 ns, open, high, low, close, volume, vwap,
        trades), or None when no bar completed. ``symbols`` are ids from `intern` (fastest) or strings."""
    def feed_many(
        self,
        symbols: _SymbolColumn,
        ts: npt.ArrayLike,
        price: npt.ArrayLike,
        size: npt.ArrayLike,
    ) -> None:
        """`push_many_columns` without handing out the completed bars: they wait in the aggregator and come
        out, in completion order, with the next call that returns bars. For a caller that collects bars on
        a timer (the streaming adapter)."""
    def flush_columns(self, now_ts: int) -> tuple[Any, ...] | None:
        """Emits every time bar whose interval has ended (end <= now_ts) as columns (as
        `push_many_columns`). Later ticks for a flushed interval are late. Count-based bars are left open."""
    def push_quotes_many_columns(
        self,
        symbols: _SymbolColumn,
        ts: npt.ArrayLike,
        bid: npt.ArrayLike,
        ask: npt.ArrayLike,
    ) -> tuple[Any, ...] | None:
        """`push_many_columns` for quotes (columns of the quote bar schema)."""
    def close_columns(self) -> tuple[Any, ...] | None:
        """Emits every open bar, partial ones included (end of stream), as columns."""
    def stats(self) -> dict[str, int]:
        """Counts: ``ticks`` offered, ``bars`` emitted, ``late`` dropped, ``rejected`` invalid."""

def bar_codes_from_hashes(
    h1: npt.NDArray[np.uint64], h2: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]] | None:
    """Dense codes (first-seen order) of a column from two independent 64-bit hashes of its values, and the
    first row of each code; None when the two hashes disagree (a collision: use exact codes)."""

def aggregate_bars(
    source: Literal["trades", "quotes"],
    codes: npt.NDArray[np.uint32],
    n_symbols: int,
    ts: npt.NDArray[np.int64],
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    *,
    every: str | int | None = None,
    ticks: int | None = None,
    volume: float | None = None,
    dollars: float | None = None,
    origin: int = 0,
) -> tuple[npt.NDArray[np.uint32], tuple[np.ndarray, ...], dict[str, int]]:
    """Batch bars over whole columns, symbols given as codes < n_symbols, GIL released (one of the engines
    behind `hybridtrader.market.aggregate_trades` / `aggregate_quotes`). ``a``/``b`` are price/size or
    bid/ask. Rows not in time order per symbol are sorted stably by (code, ts) first. Returns the bars'
    symbol codes, the other bar columns as numpy arrays (ts first), and the stats; bars ordered by
    (code, ts)."""

def aggregate_bars_hashed(
    source: Literal["trades", "quotes"],
    h1: npt.NDArray[np.uint64],
    h2: npt.NDArray[np.uint64],
    ts: npt.NDArray[np.int64],
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    *,
    every: str | int | None = None,
    ticks: int | None = None,
    volume: float | None = None,
    dollars: float | None = None,
    origin: int = 0,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64], tuple[np.ndarray, ...], dict[str, int]] | None:
    """`aggregate_bars` with symbols given by two independent hashes per row, interned in the same pass
    (codes in first-seen order). Returns (codes, first row of each code, columns, stats), or None when the
    hashes collide."""

def aggregate_bars_runs(
    source: Literal["trades", "quotes"],
    run_lengths: npt.NDArray[np.uint64],
    ts: npt.NDArray[np.int64],
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    *,
    every: str | int | None = None,
    ticks: int | None = None,
    volume: float | None = None,
    dollars: float | None = None,
    origin: int = 0,
) -> tuple[npt.NDArray[np.uint32], tuple[np.ndarray, ...], dict[str, int]]:
    """`aggregate_bars` for rows grouped by symbol: symbol code k is the k-th run of ``run_lengths[k]``
    rows, each symbol in a single run. No per-row symbol data is read; large input uses two threads, split
    by symbol or, for time bars, at an interval boundary (the same bars as one thread)."""

def bar_view_runs(
    views: npt.NDArray[np.uint64],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]] | None:
    """Runs of a string column given as its Arrow string views (two uint64 per row, the 16 bytes of each
    view): (run lengths, first row of each run) when every value's rows are contiguous, else None (also
    when a value is longer than 12 bytes, so not inline in its view)."""

def bar_order(symbols: npt.NDArray[np.uint32], key: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint64]:
    """The stable permutation that orders rows by ``key[symbols]`` (a counting sort; ``key`` maps each
    code into ``0..len(key)``)."""

# Labels' exit scans (`hybridtrader.ml.labels`): event i holds the bars rows[i] + 1 ..= rows[i] + room[i]
# of `close` (room >= 1, inside the column, else ValueError); returns each event's exit row (the first
# touch, else its last bar) and kind (+1 profit-take/reversion, -1 stop, 0 none). C-contiguous arrays.
def reversion_exits(
    close: npt.NDArray[np.float64],
    rows: npt.NDArray[np.int64],
    room: npt.NDArray[np.int64],
    side: npt.NDArray[np.float64],
    mean: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]:
    """Touch: side * (close - mean) >= 0 (kind +1; NaN never touches)."""

def barrier_exits(
    close: npt.NDArray[np.float64],
    rows: npt.NDArray[np.int64],
    room: npt.NDArray[np.int64],
    side: npt.NDArray[np.float64],
    upper: npt.NDArray[np.float64],
    lower: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]:
    """On path = side * ln(close / close[row]): touch at path >= upper (kind +1, first) or <= lower (-1)."""

# Features' seeded smoother (`hybridtrader.ml.features.Smoother`): over runs of rows (run r is rows
# bounds[r] .. bounds[r + 1], bounds ascending from 0 to len(value)), missing before each run's row
# `seed_row`, seed[r] on it (missing unless seed_present[r]), then the run's present values, smoothed by
# Polars' ewm_mean(alpha, adjust=False) recursion, bit for bit. Returns (values, present); values are NaN
# where not present. Bad shapes: ValueError. C-contiguous arrays.
def seeded_ewm(
    value: npt.NDArray[np.float64],
    present: npt.NDArray[np.bool_],
    bounds: npt.NDArray[np.int64],
    seed: npt.NDArray[np.float64],
    seed_present: npt.NDArray[np.bool_],
    seed_row: int,
    alpha: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Seeded EWM per run: (smoothed values, present)."""

def ema_columns(
    x: npt.NDArray[np.float64], alpha: float, last: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """EMA with `alpha` down each column of `x` (rows x columns) from `last` (one value per column), bit
    for bit `scipy.signal.lfilter([alpha], [1, alpha - 1], x, axis=0, zi=(1 - alpha) * last)`. ValueError
    when the shapes do not fit."""


@final
class FrameDecoder:
    """The fast path of stream frame parsing for one provider ("alpaca" or "polygon"), used by
    `hybridtrader.stream.messages.FrameParser` for JSON frames."""

    def __new__(cls, provider: str) -> Self: ...
    def decode(self, raw: bytes | str) -> tuple[int, tuple[Any, ...] | None, tuple[Any, ...] | None,
                                                tuple[Any, ...] | None] | None:
        """(messages, trades, quotes, bars) of a JSON frame made only of well-formed trades, quotes and
        bars: each kind None or (symbols list, ts int64 ns, float columns in schema order; bars end with
        the int64 trade count, -1 where unknown). None for any other frame (control messages, unknown
        types, a bad or unusual value): the general parser then counts and skips bad messages one by one.
        Symbols are the same str objects frame after frame."""

# LightGBM binary model from its text (`Booster.model_to_string`): probabilities of x's rows (float64,
# C order, one column per model feature) under the first num_iteration trees (0: all), the same leaf sums
# and sigmoid as LightGBM's predictor, on up to `threads` threads (parts of at least 2048 rows).
# ValueError for a model it does not cover (categorical splits, linear trees, averaged output, several
# trees per iteration, an objective other than binary) or a shape mismatch.
def lightgbm_probabilities(
    model: str, x: npt.NDArray[np.float64], num_iteration: int, threads: int
) -> npt.NDArray[np.float64]:
    """Probabilities of x's rows under a LightGBM binary text model."""
