"""The ledger: positions, cash, realised and unrealised P&L and fees, from fills only; marks from bars.

Positions are kept per (strategy, symbol) so every strategy's P&L is its own; the account's position in a
symbol is their sum. Average-cost accounting: a fill that grows a position moves its average price to the
quantity-weighted mean; a fill that shrinks it realises (price - avg) x closed shares x sign(position); a fill
that crosses zero closes the old position and opens the remainder at the fill price.

cash_t = cash_0 - sum(sign x qty x price) - sum(fees); equity = cash + sum(qty x mark) (mark: the last close
seen, else the last fill price). realised + unrealised - fees == equity - cash_0 at every point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from hybridtrader.errors import DataError

POSITION_SCHEMA = {
    "strategy": pl.String,
    "symbol": pl.String,
    "qty": pl.Float64,
    "avg_price": pl.Float64,
    "mark": pl.Float64,
    "realized_pnl": pl.Float64,
    "unrealized_pnl": pl.Float64,
    "fees": pl.Float64,
    "bought": pl.Float64,
    "sold": pl.Float64,
}


@dataclass(slots=True)
class Position:
    qty: float = 0.0
    avg_price: float = 0.0
    realized: float = 0.0
    fees: float = 0.0
    bought: float = 0.0  # notional traded, for turnover
    sold: float = 0.0


class Ledger:
    def __init__(self, cash: float) -> None:
        if not (math.isfinite(cash) and cash > 0):
            raise DataError(f"ledger: starting cash must be a positive number, got {cash!r}")
        self.start_cash = float(cash)
        self.cash = float(cash)
        self.book: dict[tuple[str, str], Position] = {}
        self.net: dict[str, float] = {}  # account shares per symbol (nonzero only)
        self.held_changes = 0  # times a symbol entered or left `net`: a cheap key for caches of the held set
        self.marks: dict[str, float] = {}

    def apply_fill(
        self, strategy: str, symbol: str, side: str, qty: float, price: float, fee: float
    ) -> float:
        """Book one fill; returns the P&L it realised (before fees)."""
        if side not in ("buy", "sell"):
            raise DataError(f"ledger: fill side must be 'buy' or 'sell', got {side!r}")
        if not (qty > 0 and price > 0 and math.isfinite(price) and fee >= 0):
            raise DataError(f"ledger: bad fill {symbol} {side} {qty} @ {price} fee {fee}")
        signed = qty if side == "buy" else -qty
        pos = self.book.get((strategy, symbol))
        if pos is None:
            pos = self.book[(strategy, symbol)] = Position()
        realized = 0.0
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            total = pos.qty + signed
            pos.avg_price = (pos.avg_price * abs(pos.qty) + price * qty) / abs(total)
            pos.qty = total
        else:
            closed = min(qty, abs(pos.qty))
            realized = (price - pos.avg_price) * closed * (1.0 if pos.qty > 0 else -1.0)
            pos.qty += signed
            if abs(pos.qty) < 1e-9:
                pos.qty, pos.avg_price = 0.0, 0.0
            elif (pos.qty > 0) == (signed > 0):  # crossed zero: the rest opens at the fill price
                pos.avg_price = price
        pos.realized += realized
        pos.fees += fee
        if signed > 0:
            pos.bought += qty * price
        else:
            pos.sold += qty * price
        self.cash -= signed * price + fee
        held = self.net.get(symbol)
        net = (held or 0.0) + signed
        if abs(net) < 1e-9:
            if held is not None:
                del self.net[symbol]
                self.held_changes += 1
        else:
            if held is None:
                self.held_changes += 1
            self.net[symbol] = net
        self.marks.setdefault(symbol, price)
        return realized

    def mark(self, symbol: str, price: float) -> None:
        self.marks[symbol] = price

    def position(self, symbol: str, strategy: str | None = None) -> float:
        """Signed shares: the strategy's, or the account's when `strategy` is None."""
        if strategy is None:
            return self.net.get(symbol, 0.0)
        pos = self.book.get((strategy, symbol))
        return 0.0 if pos is None else pos.qty

    def equity(self) -> float:
        return self.cash + sum(q * self.marks[s] for s, q in self.net.items())

    def totals(self) -> tuple[float, float, float]:
        """(equity, gross exposure, net exposure) at the marks, in one pass."""
        gross = net = 0.0
        marks = self.marks
        for s, q in self.net.items():
            value = q * marks[s]
            net += value
            gross += abs(value)
        return self.cash + net, gross, net

    def unrealized(self) -> float:
        return sum(p.qty * (self.marks[s] - p.avg_price) for (_, s), p in self.book.items() if p.qty)

    def realized(self) -> float:
        return sum(p.realized for p in self.book.values())

    def fees(self) -> float:
        return sum(p.fees for p in self.book.values())

    def positions(self) -> pl.DataFrame:
        """One row per (strategy, symbol) ever traded, sorted, with marks and P&L (POSITION_SCHEMA)."""
        rows = []
        for (strategy, symbol), p in sorted(self.book.items()):
            mark = self.marks[symbol]
            rows.append(
                (
                    strategy,
                    symbol,
                    p.qty,
                    p.avg_price,
                    mark,
                    p.realized,
                    p.qty * (mark - p.avg_price),
                    p.fees,
                    p.bought,
                    p.sold,
                )
            )
        return pl.DataFrame(rows, schema=POSITION_SCHEMA, orient="row")
