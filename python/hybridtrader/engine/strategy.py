"""The `Strategy` base: one class holds a strategy's whole definition (features, book, entry and exit rules,
model and threshold), and the `Context` through which it acts.

Life of a strategy in the engine (backtest and live alike):
- `prepare(bars, session_rows)` once per batch: batch features over the batch's bars with up to
  `history_bars` earlier bars of each symbol in front (the warm-up; sorted by ts, then symbol). It
  returns a frame with one row per bar of the batch (the last `session_rows` rows of `bars`, same order)
  and whatever columns the strategy wants, or None (then `on_bars` gets the plain bars). Features must be
  causal (a row uses that bar and earlier ones only); that makes computing them once per batch the same
  as recomputing them every bar time.
- `prepare_ahead(history, batches)` (a backtest, before `prepare`): the next few batches at once, whose
  features the strategy may compute together for their `prepare` calls.
- `advance(bars)` instead of `prepare`, when the batch is one bar time and the strategy can take it from
  state carried over (see there); None falls back to `prepare`.
- `on_bars(ctx, bars)` once per bar time with that bar time's rows of the prepared frame: a cross-sectional
  frame of bars whose interval has closed (`ctx.now_ns` = their ts + the interval). Orders sent here are
  decided now and execute no earlier than the next bar or quote after the broker's latency.
- `on_update(ctx, order, update)` for each broker event about one of its orders (fills included), and
  `on_session_close(ctx)` after the session's last bar.
- `wakes_at(row)` (optional): the next row of the prepared batch at whose bar time `on_bars` may act. A
  strategy that implements it is not called at the bar times before that row when nothing else happens
  there (no order open, no child order due, not the flatten time): a backtest then runs such stretches of
  bar times in one step. Without it `on_bars` is called at every bar time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from hybridtrader.config import Config
from hybridtrader.errors import StateError

if TYPE_CHECKING:
    from hybridtrader.engine.events import BarBatch, OrderUpdate
    from hybridtrader.engine.orders import Order, OrderRequest


class Context(Protocol):
    """What the engine offers a strategy (times: UTC epoch ns; quantities: shares)."""

    now_ns: int
    bar_index: int  # bar time within the batch: 0, 1, ...
    row_start: int  # this bar time's first row in the batch (rows are sorted by ts, then symbol)
    row_end: int

    @property
    def session(self) -> date:
        """The New York session date of the current batch."""

    @property
    def equity(self) -> float: ...

    def price(self, symbol: str) -> float:
        """The last close of `symbol` known now (NaN before its first bar)."""
        ...

    def position(self, symbol: str) -> float:
        """This strategy's filled position (signed shares)."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[Order]: ...

    def open_shares(self, symbol: str) -> float:
        """The signed shares this strategy's open orders in `symbol` have still to fill (buys +, sells -):
        sum(o.sign * o.leaves_qty for o in open_orders(symbol)), in one call."""
        ...

    def submit(self, request: OrderRequest, leg: str = "0") -> str | None:
        """Send an order (after the exposure check); its client order id, or None when refused."""
        ...

    def enter(self, symbol: str, side: str, atr: float, leg: str = "entry") -> float:
        """Open a position sized by the DynamicSizer (ATR risk budget) at the last close, clipped to the
        exposure caps, refused at toxic times, cut into child orders when time slicing is on; the shares
        scheduled (0 when nothing is sent)."""
        ...

    def close(self, symbol: str, leg: str = "exit") -> str | None:
        """Cancel this strategy's open orders and scheduled children in `symbol` and send a market order
        that brings its position to zero; the order's id (None when flat)."""
        ...

    def cancel(self, client_order_id: str) -> None: ...

    def replace(
        self,
        client_order_id: str,
        leg: str,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
    ) -> str: ...


class Strategy(ABC):
    """Subclass and override `on_bars` (and `prepare` for batch features). `name` defaults to the class
    name; `book` is "intraday" (flattened before the close) or "swing" (held across sessions)."""

    name: str = ""
    book: str = "intraday"
    history_bars: int = 0

    def __init__(self, config: Config | None = None) -> None:
        self.config = config if config is not None else Config()
        if not self.name:
            self.name = type(self).__name__

    def describe(self) -> dict[str, object]:
        """What the run's provenance records about this strategy (model, threshold, rules)."""
        return {
            "name": self.name,
            "book": self.book,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
        }

    def prepare(self, bars: pl.DataFrame, session_rows: int) -> pl.DataFrame | None:
        return bars.tail(session_rows)

    def prepare_ahead(self, history: pl.DataFrame | None, batches: Sequence[BarBatch]) -> None:
        """A backtest's next batches (`Trader.run` reads a few sessions ahead), before the first of them is
        prepared, with the `history` before them (up to `history_bars` rows of each symbol; None: none):
        a strategy may compute their features here together (one query, not one per batch) for its
        `prepare` of each of them, in order, to take. This one does nothing."""
        return None

    def advance(self, bars: pl.DataFrame) -> pl.DataFrame | None:
        """A batch of one bar time (live), prepared from state the strategy carried over from the batches
        before: what `prepare` would give on the history and `bars`, without the history. None when the
        strategy carries no such state (this one): then `prepare` is called."""
        return None

    @abstractmethod
    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        """Decide on one bar time's closed bars (a cross-section); orders go through `ctx`."""

    def wakes_at(self, row: int) -> int:
        """The first row at or after `row` (a row of the batch `prepare` or `advance` gave, at a bar time's
        first row) at whose bar time `on_bars` may do anything, given what the strategy holds now (asked
        again after each `on_bars` and `on_update`); a row past the batch's last when none in it. The
        engine may skip `on_bars` at the bar times before that row (a skipped call must have done
        nothing), and calls it there. This one returns `row`: every bar time (the engine, seeing it not
        overridden, then never skips and does not ask)."""
        return row

    def on_update(self, ctx: Context, order: Order, update: OrderUpdate) -> None:
        return None

    def on_session_close(self, ctx: Context) -> None:
        return None

    def state(self) -> dict[str, Any]:
        """What the strategy carries from one bar time to the next, as JSON-able data: the live node
        journals it at bar boundaries and gives it back to `restore` after a restart. A strategy that
        carries something overrides both; this one carries nothing."""
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back what `state` returned."""
        if state:
            raise StateError(f"strategy {self.name}: journaled state {sorted(state)} it cannot take back")
