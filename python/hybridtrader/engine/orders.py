"""Orders: the request a strategy makes, deterministic client order ids, and the order state machine.

`client_order_id(strategy, symbol, decision_ns, leg)` (the Rust core's) is fixed by what the order is for:
the same four fields give the same id (35 chars, "ht-" + blake2b-128 hex of the fields) in every run and
process, so a restart that re-decides an intent re-uses the id and the broker refuses the duplicate instead
of trading twice.

`Order` (one order the engine sent, and what the broker has said about it since) is the Rust core's
(rust/src/orders.rs): `Order.apply(update)` moves it along new -> accepted -> partially_filled -> filled, or
to canceled, expired, replaced (any open state) or rejected (a new order); fills may come before the
acknowledgement. Any other transition, a fill that is not positive or overfills, a "fill" that leaves
shares open or a "partial_fill" that leaves none, is a `StateError` and leaves the order unchanged.
Quantity invariant: 0 <= filled_qty <= qty, filled_qty never decreases, and an order is filled exactly when
filled_qty == qty.
"""

from __future__ import annotations

from dataclasses import dataclass

from hybridtrader._core import Order, client_order_id
from hybridtrader.errors import ConfigError

ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
TIME_IN_FORCE = ("day", "gtc", "ioc", "fok", "opg", "cls")
MAX_CLIENT_ORDER_ID = 48  # Alpaca's limit
__all__ = ["MAX_CLIENT_ORDER_ID", "ORDER_TYPES", "TIME_IN_FORCE", "Order", "OrderRequest", "client_order_id"]


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
