"""Leakage-free splits for samples with label intervals [t0, t1] (López de Prado, AFML ch. 7).

- `purged_kfold_splits`: K contiguous test blocks in time (all samples sharing a t0 stay in one block).
  A training sample is *purged* when its interval overlaps the test block's span [first t0, last t1]
  (it starts inside, ends inside or spans it) and *embargoed* when it starts within the h = ceil(pct x T)
  bar times right after the span (T = number of distinct bar times); nothing is embargoed before a block.
- `walk_forward_splits`: test blocks move forward by a step; training is every earlier sample (expanding)
  or the latest `train_fraction` of bar times (sliding); training samples whose label ends at or after
  the test block starts are purged.
- `inner_split`: the last share (by time) of a training fold for early stopping, purged the same way, so
  early stopping never sees the test block.

All functions take int64 nanosecond arrays and return index arrays into them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hybridtrader.config import PurgedKFoldConfig, WalkForwardConfig
from hybridtrader.errors import DataError


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    test: np.ndarray


def _check(t0: np.ndarray, t1: np.ndarray) -> None:
    if t0.shape != t1.shape or t0.ndim != 1:
        raise DataError(f"t0/t1: need two 1-d arrays of one length, got shapes {t0.shape} and {t1.shape}")
    if len(t0) == 0:
        raise DataError("t0/t1: no samples")
    if np.any(t1 < t0):
        raise DataError("t0/t1: a label ends before it starts (t1 < t0)")


def _grid(t0: np.ndarray, t1: np.ndarray, times: np.ndarray | None) -> np.ndarray:
    return np.unique(np.concatenate([t0, t1])) if times is None else np.unique(times)


def _embargo_end(times: np.ndarray, after: int, h: int) -> int:
    """The last bar time inside the embargo that follows time `after` (== after when h is 0)."""
    if h == 0:
        return after
    i = int(np.searchsorted(times, after, side="right")) + h - 1
    return int(times[min(i, len(times) - 1)])


def purge(train: np.ndarray, t0: np.ndarray, t1: np.ndarray, start: int, embargo_end: int) -> np.ndarray:
    """Training indices whose [t0, t1] does not touch [start, embargo_end]: a label ending before the
    test span, or starting after the span and its embargo (embargo_end >= the span's end)."""
    keep = (t1[train] < start) | (t0[train] > embargo_end)
    return train[keep]


def purged_kfold_splits(
    t0: np.ndarray, t1: np.ndarray, cfg: PurgedKFoldConfig, times: np.ndarray | None = None
) -> list[Split]:
    _check(t0, t1)
    grid = _grid(t0, t1, times)
    uniq, inverse, counts = np.unique(t0, return_inverse=True, return_counts=True)
    if len(uniq) < cfg.n_splits:
        raise DataError(f"n_splits={cfg.n_splits} is more than the {len(uniq)} distinct sample times")
    # Block of each distinct t0 by cumulative sample count, so blocks hold about equal sample numbers.
    cum = np.cumsum(counts) - counts
    block_of_time = np.minimum((cum * cfg.n_splits) // len(t0), cfg.n_splits - 1)
    block = block_of_time[inverse]
    h = math.ceil(cfg.embargo_pct * len(grid))
    all_idx = np.arange(len(t0))
    splits = []
    for k in range(cfg.n_splits):
        test = np.flatnonzero(block == k)
        if len(test) == 0:
            continue
        start, end = int(t0[test].min()), int(t1[test].max())
        train = purge(all_idx[block != k], t0, t1, start, _embargo_end(grid, end, h))
        splits.append(Split(train, test))
    return splits


def walk_forward_splits(
    t0: np.ndarray, t1: np.ndarray, cfg: WalkForwardConfig, times: np.ndarray | None = None
) -> list[Split]:
    _check(t0, t1)
    grid = _grid(t0, t1, times)
    n = len(grid)
    train_len = math.ceil(cfg.train_fraction * n)
    test_len = math.ceil(cfg.test_fraction * n)
    step = math.ceil((cfg.step_fraction or cfg.test_fraction) * n)
    splits = []
    s = train_len
    while s < n:
        test_lo, test_hi = int(grid[s]), int(grid[min(s + test_len, n) - 1])
        train_lo = int(grid[0]) if cfg.window == "expanding" else int(grid[max(0, s - train_len)])
        test = np.flatnonzero((t0 >= test_lo) & (t0 <= test_hi))
        train = np.flatnonzero((t0 >= train_lo) & (t0 < test_lo) & (t1 < test_lo))
        if len(test) and len(train):
            splits.append(Split(train, test))
        s += step
    if not splits:
        raise DataError(
            f"walk_forward: no split with train_fraction={cfg.train_fraction} and "
            f"test_fraction={cfg.test_fraction} on {n} bar times"
        )
    return splits


def inner_split(train: np.ndarray, t0: np.ndarray, t1: np.ndarray, fraction: float) -> Split:
    """Split a training fold into (fit, early-stopping) parts by time, purging fit labels that reach
    into the early-stopping part."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"fraction must be in (0, 1), got {fraction}")
    order = train[np.argsort(t0[train], kind="stable")]
    cut = int(len(order) * (1.0 - fraction))
    if cut <= 0 or cut >= len(order):
        raise DataError(f"inner_split: {len(order)} training samples are too few to split")
    valid = order[cut:]
    start = int(t0[valid].min())
    fit = order[:cut]
    fit = fit[(t1[fit] < start)]
    return Split(fit, valid)
