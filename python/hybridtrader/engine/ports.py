"""What differs between a backtest and live trading, as three ports the `Trader` is written against.

- `Clock`: the engine's notion of now (simulated in a backtest, the wall clock live, a venue's replay clock).
- `Feed`: closed bars in batches (a whole session from history; one bar time from the live stream).
- `Broker`: orders out, order updates in (the fill simulator in a backtest; Alpaca live), plus positions and
  cash for reconciliation; a `BookingBroker` (the backtest's) can also book its updates straight into the
  engine's order flow.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl

from hybridtrader._core import OrderFlowCore
from hybridtrader.engine.events import BarBatch, OrderUpdate
from hybridtrader.engine.orders import OrderRequest


@runtime_checkable
class Clock(Protocol):
    def now_ns(self) -> int:
        """UTC epoch nanoseconds."""
        ...

    def advance_to(self, ts_ns: int) -> None:
        """Let time reach `ts_ns` (a simulated clock jumps; a wall clock waits). Never moves backwards."""
        ...


@runtime_checkable
class Feed(Protocol):
    every_ns: int

    def batches(self) -> Iterator[BarBatch]:
        """Closed bars in time order, each batch within one session."""
        ...


@runtime_checkable
class Broker(Protocol):
    def submit(self, client_order_id: str, request: OrderRequest, ts_ns: int) -> None:
        """Send an order decided at `ts_ns`; the outcome arrives as updates."""
        ...

    def cancel(self, client_order_id: str, ts_ns: int) -> None: ...

    def replace(
        self,
        client_order_id: str,
        new_client_order_id: str,
        ts_ns: int,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
    ) -> None: ...

    def on_bars(
        self, bars: pl.DataFrame, every_ns: int, index: tuple[list[str], np.ndarray] | None = None
    ) -> None:
        """A batch of closed bars (BAR_SCHEMA, sorted by ts), before the engine walks its bar times, with
        its symbols' encoding when the engine has it (`BarBatch.symbol_index`; None: the broker encodes
        them if it needs to). A simulated broker matches open orders against each bar time once `poll`
        reaches its close; a live broker ignores it (the exchange does the matching)."""
        ...

    def poll(self, now_ns: int) -> list[OrderUpdate]:
        """Every order update up to `now_ns` not returned before, in time order (a simulated broker first
        matches the bars closed by then)."""
        ...

    def has_open_orders(self) -> bool: ...

    def positions(self) -> dict[str, float]:
        """Signed shares per symbol as the broker holds them (reconciliation)."""
        ...


@runtime_checkable
class BookingBroker(Broker, Protocol):
    """A broker that takes orders from the engine's order flow and books its updates straight into it
    (the backtest's simulated one: no `OrderUpdate` is made; updates so only when no strategy listens)."""

    def submit_from(
        self,
        flow: OrderFlowCore,
        strategy: str,
        book: str,
        leg: str,
        request: OrderRequest,
        ts_ns: int,
        reference: float,
        price: float,
    ) -> str:
        """`flow.submit(strategy, book, leg, request, ts_ns, reference, price)` and `submit` of the order
        it makes, in one call; its client order id."""
        ...

    def poll_into(self, flow: OrderFlowCore, now_ns: int) -> bool:
        """`poll`'s updates booked by `flow` (as `flow.apply` of each, in time order); whether there were
        any."""
        ...
