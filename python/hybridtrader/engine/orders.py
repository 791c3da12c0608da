"""Orders: the request a strategy makes, deterministic client order ids, and the order state machine.

States: new (sent, not yet acknowledged) -> accepted -> partially_filled -> filled; any open state may end
canceled, expired or replaced (the replacement is a new order with its own id), and a new order may be
rejected. Fills may arrive before the acknowledgement (a broker's ack latency can exceed its matching
latency), so new -> partially_filled / filled is legal. Every other transition is a `StateError`: the
engine's view of an order never silently diverges from the broker's.

Quantity invariant: 0 <= filled_qty <= qty, filled_qty never decreases, and an order is filled exactly when
filled_qty == qty.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from hybridtrader.engine.events import OrderUpdate
from hybridtrader.errors import ConfigError, StateError

ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
TIME_IN_FORCE = ("day", "gtc", "ioc", "fok", "opg", "cls")
OPEN_STATES = frozenset({"new", "accepted", "partially_filled"})
TERMINAL_STATES = frozenset({"filled", "canceled", "expired", "rejected", "replaced"})
# update kind -> the state it moves an order to, and the states it may come from
_TRANSITIONS: dict[str, tuple[str, frozenset[str]]] = {
    "accepted": ("accepted", frozenset({"new"})),
    "partial_fill": ("partially_filled", OPEN_STATES),
    "fill": ("filled", OPEN_STATES),
    "canceled": ("canceled", OPEN_STATES),
    "expired": ("expired", OPEN_STATES),
    "rejected": ("rejected", frozenset({"new"})),
    "replaced": ("replaced", OPEN_STATES),
}
MAX_CLIENT_ORDER_ID = 48  # Alpaca's limit
_QTY_EPS = 1e-9


def client_order_id(strategy: str, symbol: str, decision_ns: int, leg: str) -> str:
    """A short id (35 chars) fixed by what the order is for: the same (strategy, symbol, decision time, leg)
    gives the same id in every run and process, so a restart that re-decides an intent re-uses the id and
    the broker refuses the duplicate instead of trading twice. blake2b-128 of the four fields."""
    key = f"{strategy}\x1f{symbol}\x1f{int(decision_ns)}\x1f{leg}".encode()
    return "ht-" + hashlib.blake2b(key, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a strategy asks for. Validated on construction (ConfigError naming the field)."""

    symbol: str
    side: str
    qty: float
    type: str = "market"
    time_in_force: str = "day"
    limit_price: float | None = None
    stop_price: float | None = None

    def __post_init__(self) -> None:
        # the common order (market, day, no prices): every check below passes; skip their tuple scans
        if (
            self.type == "market"
            and self.time_in_force == "day"
            and self.side in ("buy", "sell")
            and self.qty > 0
            and self.limit_price is None
            and self.stop_price is None
        ):
            return
        if self.side not in ("buy", "sell"):
            raise ConfigError(f"order side must be 'buy' or 'sell', got {self.side!r}")
        if not self.qty > 0:
            raise ConfigError(f"order qty must be > 0, got {self.qty!r}")
        if self.type not in ORDER_TYPES:
            raise ConfigError(f"order type must be one of {', '.join(ORDER_TYPES)}, got {self.type!r}")
        if self.time_in_force not in TIME_IN_FORCE:
            raise ConfigError(
                f"time_in_force must be one of {', '.join(TIME_IN_FORCE)}, got {self.time_in_force!r}"
            )
        needs_limit = self.type in ("limit", "stop_limit")
        needs_stop = self.type in ("stop", "stop_limit")
        if needs_limit != (self.limit_price is not None):
            raise ConfigError(
                f"{self.type} order: limit_price {'required' if needs_limit else 'not allowed'}"
            )
        if needs_stop != (self.stop_price is not None):
            raise ConfigError(f"{self.type} order: stop_price {'required' if needs_stop else 'not allowed'}")

    @property
    def sign(self) -> int:
        """+1 buy, -1 sell (the side was validated on construction)."""
        return 1 if self.side == "buy" else -1


@dataclass(slots=True)
class Order:
    """One order the engine sent, and what the broker has said about it since."""

    client_order_id: str
    strategy: str
    book: str
    leg: str
    request: OrderRequest
    decision_ns: int
    decision_price: float
    forecast_bps: float
    status: str = "new"
    filled_qty: float = 0.0
    notional: float = 0.0  # sum of fill qty x price
    fees: float = 0.0
    updated_ns: int = 0
    reason: str = ""
    history: list[str] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    @property
    def leaves_qty(self) -> float:
        return self.request.qty - self.filled_qty if self.status in OPEN_STATES else 0.0

    @property
    def avg_price(self) -> float:
        return self.notional / self.filled_qty if self.filled_qty > 0 else float("nan")

    def apply(self, update: OrderUpdate) -> float:
        """Move to the state `update` reports; StateError when the transition or the quantities are illegal
        (the order is left unchanged). Returns the change of `leaves_qty` (after - before)."""
        if update.client_order_id != self.client_order_id:
            raise StateError(f"order {self.client_order_id}: update for {update.client_order_id}")
        kind = update.kind
        target, sources = _TRANSITIONS.get(kind, ("", frozenset()))
        status = self.status
        if status not in sources:
            raise StateError(f"order {self.client_order_id}: illegal transition {status} -> {kind}")
        qty = self.request.qty
        # every source of a legal transition is open: leaves was qty - filled_qty
        before = qty - self.filled_qty
        after = before
        if target in ("partially_filled", "filled"):
            filled = self.filled_qty + update.qty
            if not update.qty > 0 or filled > qty + _QTY_EPS:
                raise StateError(f"order {self.client_order_id}: fill {update.qty} makes {filled} of {qty}")
            complete = abs(filled - qty) <= _QTY_EPS
            if complete != (kind == "fill"):
                raise StateError(f"order {self.client_order_id}: {kind} leaves {qty - filled} open")
            self.filled_qty = filled
            self.notional += update.qty * update.price
            self.fees += update.fee
            after = qty - filled
        self.status = target
        self.updated_ns = update.ts_ns
        if update.reason:
            self.reason = update.reason
        self.history.append(kind)
        return (after if target in OPEN_STATES else 0.0) - before
