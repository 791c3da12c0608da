"""Typed events the engine passes around.

Times are int64 UTC epoch nanoseconds; sides "buy"/"sell"; quantities in shares (float, whole in practice);
prices in account currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal, NamedTuple

import polars as pl

# What a broker reports about an order (Alpaca's trade_updates events, and the fill simulator's).
UpdateKind = Literal["accepted", "partial_fill", "fill", "canceled", "expired", "rejected", "replaced"]
UPDATE_KINDS: tuple[str, ...] = (
    "accepted",
    "partial_fill",
    "fill",
    "canceled",
    "expired",
    "rejected",
    "replaced",
)


@dataclass(frozen=True, slots=True)
class BarBatch:
    """Closed bars of one session, BAR_SCHEMA rows sorted by (ts, symbol): a whole session in a backtest, the
    bars of one bar time live. `every_ns` is the bar interval (a bar covers [ts, ts + every_ns))."""

    session: date
    bars: pl.DataFrame
    every_ns: int


class OrderUpdate(NamedTuple):
    """One broker event about one order. For "partial_fill"/"fill": `qty` and `price` are this fill's,
    `fee` its commission plus regulatory fees; `filled_qty` is cumulative and `leaves_qty` what is still
    open. `reason` explains rejects and cancels ("" otherwise). A named tuple, not a frozen dataclass:
    a backtest makes one per acknowledgement and fill, and a tuple is built about ten times faster."""

    ts_ns: int
    client_order_id: str
    symbol: str
    side: str
    kind: str
    qty: float = 0.0
    price: float = 0.0
    fee: float = 0.0
    filled_qty: float = 0.0
    leaves_qty: float = 0.0
    reason: str = ""

    @property
    def is_fill(self) -> bool:
        return self.kind in ("partial_fill", "fill")


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A session opened or closed (`ts_ns`: the regular open or close)."""

    kind: Literal["open", "close"]
    session: date
    ts_ns: int
