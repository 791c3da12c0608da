"""Typed events the engine passes around.

Times are int64 UTC epoch nanoseconds; sides "buy"/"sell"; quantities in shares (float, whole in practice);
prices in account currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal, NamedTuple

import numpy as np
import polars as pl

from hybridtrader.market.schema import symbol_codes

# What a broker reports about an order (Alpaca's trade_updates events, and the fill simulator's).
UpdateKind = Literal["accepted", "partial_fill", "fill", "canceled", "expired", "rejected", "replaced"]
_FEW_ROWS = 2_000  # rows up to which a batch's symbols are encoded in Python (see BarBatch.symbol_index)
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
    bars of one bar time live. `every_ns` is the bar interval (a bar covers [ts, ts + every_ns)).

    A feed that has the symbols encoded already may give `names` (the batch's distinct symbols, sorted)
    and `codes` (each row's position in `names`, intp): the engine then reads them instead of encoding the
    strings again (None: the engine encodes them)."""

    session: date
    bars: pl.DataFrame
    every_ns: int
    names: list[str] | None = None
    codes: np.ndarray | None = None

    def symbol_index(self) -> tuple[list[str], np.ndarray]:
        """The batch's distinct symbols, sorted, and each row's position in them (intp): the feed's
        encoding when it gave one, else the strings' (`symbol_index`)."""
        if self.names is not None and self.codes is not None:
            return self.names, self.codes
        return symbol_index(self.bars["symbol"])


def symbol_rows(names: list[str], codes: np.ndarray) -> np.ndarray:
    """Each row's symbol from a `symbol_index` encoding, as an object array of the `names` themselves (no
    string is copied: a cheaper column of Python strings than the frame's own)."""
    return np.array(names, dtype=object)[codes]


def symbol_index(symbols: pl.Series) -> tuple[list[str], np.ndarray]:
    """A symbol column's distinct names, sorted, and each row's position in them (intp)."""
    if symbols.len() <= _FEW_ROWS:  # a cross-section of one bar time (live): Python sorts it faster
        rows = symbols.to_list()
        names = sorted(set(rows))
        index = {s: i for i, s in enumerate(names)}
        return names, np.fromiter(map(index.__getitem__, rows), np.intp, len(rows))
    codes = symbol_codes(symbols)
    assert isinstance(codes.dtype, pl.Enum)
    return codes.dtype.categories.to_list(), codes.to_physical().to_numpy().astype(np.intp)


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
