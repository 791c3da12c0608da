"""Orders: the request a strategy makes, deterministic client order ids, and the order state machine.

`client_order_id(strategy, symbol, decision_ns, leg)` (the Rust core's) is fixed by what the order is for:
the same four fields give the same id (35 chars, "ht-" + blake2b-128 hex of the fields) in every run and
process, so a restart that re-decides an intent re-uses the id and the broker refuses the duplicate instead
of trading twice.

`OrderRequest` (what a strategy asks for: symbol, side, qty, type "market", time in force "day", limit and
stop prices) is the Rust core's too (rust/src/py/orders.rs): immutable, equal when its fields are, validated
on construction: a side other than "buy"/"sell", a qty not > 0, a type not in ORDER_TYPES or a time in force
not in TIME_IN_FORCE, a limit price on a type without one (or none on limit and stop_limit), likewise the
stop price (stop and stop_limit), is a ConfigError naming the field.

`Order` (one order the engine sent, and what the broker has said about it since) is the Rust core's
(rust/src/orders.rs): `Order.apply(update)` moves it along new -> accepted -> partially_filled -> filled, or
to canceled, expired, replaced (any open state) or rejected (a new order); fills may come before the
acknowledgement. Any other transition, a fill that is not positive or overfills, a "fill" that leaves
shares open or a "partial_fill" that leaves none, is a `StateError` and leaves the order unchanged.
Quantity invariant: 0 <= filled_qty <= qty, filled_qty never decreases, and an order is filled exactly when
filled_qty == qty.
"""

from __future__ import annotations

from hybridtrader._core import Order, OrderRequest, client_order_id

ORDER_TYPES: tuple[str, ...] = tuple(OrderRequest.ORDER_TYPES)
TIME_IN_FORCE: tuple[str, ...] = tuple(OrderRequest.TIME_IN_FORCE)
MAX_CLIENT_ORDER_ID = 48  # Alpaca's limit
__all__ = ["MAX_CLIENT_ORDER_ID", "ORDER_TYPES", "TIME_IN_FORCE", "Order", "OrderRequest", "client_order_id"]
