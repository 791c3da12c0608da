"""Trading costs for labels and backtests: a fixed cost in basis points, or any slippage model.

A slippage model is any object with `forecast_slippage(symbol, side, qty, price, ts=None) -> bps`
(`hybridtrader.SlippageModel`); a round trip pays the entry side and the opposite exit side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class SlippageForecaster(Protocol):
    def forecast_slippage(
        self, symbol: str, side: str, qty: float, price: float, ts: object = None
    ) -> float: ...


class CostModel(Protocol):
    def round_trip(
        self, symbols: np.ndarray, sides: np.ndarray, prices: np.ndarray, ts: np.ndarray
    ) -> np.ndarray:
        """Round-trip cost of each trade as a share of its notional."""
        ...


@dataclass(frozen=True)
class FixedCost:
    bps_per_side: float

    def __post_init__(self) -> None:
        if not self.bps_per_side >= 0.0:
            raise ValueError(f"bps_per_side must be >= 0, got {self.bps_per_side}")

    def round_trip(
        self, symbols: np.ndarray, sides: np.ndarray, prices: np.ndarray, ts: np.ndarray
    ) -> np.ndarray:
        return np.full(len(sides), 2.0 * self.bps_per_side / 1e4)


@dataclass(frozen=True)
class SlippageCost:
    """Costs from a slippage model for a trade of `notional` currency at the entry price."""

    model: SlippageForecaster
    notional: float

    def round_trip(
        self, symbols: np.ndarray, sides: np.ndarray, prices: np.ndarray, ts: np.ndarray
    ) -> np.ndarray:
        out = np.empty(len(sides))
        f = self.model.forecast_slippage
        for i, (sym, s, px, t) in enumerate(zip(symbols, sides, prices, ts, strict=True)):
            qty = max(1.0, round(self.notional / px))
            entry, exit_ = ("buy", "sell") if s > 0 else ("sell", "buy")
            out[i] = (f(sym, entry, qty, px, t) + f(sym, exit_, qty, px, t)) / 1e4
        return out
