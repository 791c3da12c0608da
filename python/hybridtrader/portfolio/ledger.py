"""The ledger: positions, cash, realised and unrealised P&L and fees, from fills only; marks from bars.

Positions are kept per (strategy, symbol) so every strategy's P&L is its own; the account's position in a
symbol is their sum. Average-cost accounting: a fill that grows a position moves its average price to the
quantity-weighted mean; a fill that shrinks it realises (price - avg) x closed shares x sign(position); a fill
that crosses zero closes the old position and opens the remainder at the fill price.

cash_t = cash_0 - sum(sign x qty x price) - sum(fees); equity = cash + sum(qty x mark) (mark: the last close
seen, else the last fill price). realised + unrealised - fees == equity - cash_0 at every point.

The booking of fills is the Rust core's (rust/src/ledger.rs); the reads below are over its dicts.
"""

from __future__ import annotations

import polars as pl

from hybridtrader._core import LedgerCore

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


class Ledger(LedgerCore):
    """`Ledger(cash)`: fills are booked by the core (`apply_fill(strategy, symbol, side, qty, price, fee)`,
    returning the P&L realised; DataError for a bad side, qty, price or fee), into `cash`, `book`
    ((strategy, symbol) -> Position), `net` and `marks` (Python dicts, read in place) and `held_changes`
    (times a symbol entered or left `net`: a cheap key for caches of the held set)."""

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
