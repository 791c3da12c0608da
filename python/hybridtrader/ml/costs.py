"""Trading costs for labels and backtests: a fixed cost in basis points, or any slippage model.

A slippage model is any object with `forecast_slippage(symbol, side, qty, price, ts=None) -> bps`
(`hybridtrader.SlippageModel`); a round trip pays the entry side and the opposite exit side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

from hybridtrader.errors import DataError
from hybridtrader.market.schema import symbol_codes


class SlippageForecaster(Protocol):
    def forecast_slippage(
        self, symbol: str, side: str, qty: float, price: float, ts: object = None
    ) -> float: ...


Symbols = np.ndarray | pl.Series  # one symbol per trade: strings, or a String or Enum Series


class CostModel(Protocol):
    def round_trip(
        self, symbols: Symbols, sides: np.ndarray, prices: np.ndarray, ts: np.ndarray
    ) -> np.ndarray:
        """Round-trip cost of each trade as a share of its notional."""
        ...


@dataclass(frozen=True)
class FixedCost:
    bps_per_side: float

    def __post_init__(self) -> None:
        if not self.bps_per_side >= 0.0:
            raise DataError(f"bps_per_side must be >= 0, got {self.bps_per_side}")

    def round_trip(
        self, symbols: Symbols, sides: np.ndarray, prices: np.ndarray, ts: np.ndarray
    ) -> np.ndarray:
        return np.full(len(sides), 2.0 * self.bps_per_side / 1e4)


@dataclass(frozen=True)
class SlippageCost:
    """Costs from a slippage model for a trade of `notional` currency at the entry price, both legs priced
    at the entry time. Uses the model's batch `forecast_many` when it has one (given the symbols as an Enum
    Series and the sides as +1/-1 signs)."""

    model: SlippageForecaster
    notional: float

    def round_trip(
        self, symbols: Symbols, sides: np.ndarray, prices: np.ndarray, ts: np.ndarray
    ) -> np.ndarray:
        prices = np.asarray(prices, dtype=float)
        qty = np.maximum(1.0, np.round(self.notional / prices))
        buy = (np.asarray(sides) > 0).astype(np.int64)
        ts_ns = np.asarray(ts).astype("datetime64[ns]").astype(np.int64)
        batch = getattr(self.model, "forecast_many", None)
        if batch is not None and len(prices):
            # Encoded once for both legs (an Enum keeps its categories: no string hashing per call), and the
            # sides as signs: no Python object per row, no string per side.
            syms = (
                symbols if isinstance(symbols, pl.Series) else pl.Series("symbol", symbols, dtype=pl.String)
            )
            if not isinstance(syms.dtype, pl.Enum):
                syms = symbol_codes(syms)
            entry_sign = (2 * buy - 1).astype(np.int8)  # +1 buy, -1 sell
            bps = np.asarray(batch(syms, entry_sign, qty, prices, ts_ns)) + np.asarray(
                batch(syms, -entry_sign, qty, prices, ts_ns)
            )
            return bps / 1e4
        entry = np.where(buy == 1, "buy", "sell")
        exit_ = np.where(buy == 1, "sell", "buy")
        f = self.model.forecast_slippage
        out = np.empty(len(prices))
        for i, (sym, a, b, q, px, t) in enumerate(
            zip(symbols, entry, exit_, qty, prices, ts_ns, strict=True)
        ):
            out[i] = (
                f(str(sym), str(a), float(q), float(px), int(t))
                + f(str(sym), str(b), float(q), float(px), int(t))
            ) / 1e4
        return out


def describe(costs: CostModel) -> str:
    if isinstance(costs, FixedCost):
        return f"fixed {costs.bps_per_side} bps per side"
    if isinstance(costs, SlippageCost):
        return f"{type(costs.model).__name__} at {costs.notional:g} notional per trade"
    return type(costs).__name__
