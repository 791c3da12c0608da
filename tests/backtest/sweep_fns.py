"""A real, small backtest for the sweep tests: a moving-average crossover on one price series, long when
the fast average is above the slow one, with a cost per position change. Module-level so pool workers
import it."""

from __future__ import annotations

from typing import Any

import numpy as np
from hybridtrader.tasks import TaskContext


def crossover(params: dict[str, Any], ctx: TaskContext) -> np.ndarray:
    """Per-period returns, one per price change: flat until the slow average exists, then the position
    decided at the close of t-1 earns the return of t."""
    prices: np.ndarray = ctx.shared
    fast, slow = int(params["fast"]), int(params["slow"])
    if fast >= slow:
        raise ValueError(f"fast {fast} must be below slow {slow}")
    ret = np.diff(prices) / prices[:-1]
    csum = np.concatenate([[0.0], np.cumsum(prices)])
    ma_fast = (csum[fast:] - csum[:-fast]) / fast  # average of the `fast` prices ending at each t
    ma_slow = (csum[slow:] - csum[:-slow]) / slow
    long = (ma_fast[slow - fast :] > ma_slow).astype(float)  # aligned on prices[slow-1:]
    pos = long[:-1]  # known at t-1
    cost = params.get("cost_bps", 0.0) * 1e-4 * np.abs(np.diff(np.concatenate([[0.0], pos])))
    return np.concatenate([np.zeros(slow - 1), pos * ret[slow - 1 :] - cost])


def crossover_unpadded(params: dict[str, Any], ctx: TaskContext) -> np.ndarray:
    """The crossover's returns from the first period the slow average exists (length depends on `slow`)."""
    return crossover(params, ctx)[int(params["slow"]) - 1 :]
