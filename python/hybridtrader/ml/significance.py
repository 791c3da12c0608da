"""Is the model's edge more than chance? Discrimination with a confidence interval, a paired bootstrap of
the Sharpe difference between two strategies, and the permutation p-value.

- AUC by the Mann-Whitney statistic; its variance by DeLong, DeLong & Clarke-Pearson (1988) through the
  structural components (placement values) V10_i = share of negatives below positive i (ties 1/2) and
  V01_j = share of positives above negative j: Var = s2(V10)/m + s2(V01)/n (m positives, n negatives,
  s2 the sample variance). Computed from midranks in O(N log N) (Sun & Xu 2014). The interval is the normal
  one, AUC -/+ z sqrt(Var), clipped to [0, 1].
- Stationary bootstrap (Politis & Romano 1994): resampled series made of blocks of geometric length with
  mean L, starting at uniform positions, wrapping around the end; both strategies' per-period returns are
  resampled with the same indices (a paired test), so their correlation and serial dependence are kept.
  The confidence that A beats B is the share of resamples in which Sharpe(A) - Sharpe(B) > 0 (a percentile
  bootstrap: >= 0.95 means the one-sided 95% interval of the difference lies above 0).
- Permutation p-value: (1 + #{null >= real}) / (1 + N), never 0 (Phipson & Smyth 2010).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class AucInterval:
    auc: float
    se: float  # DeLong standard error (0 when a class is absent)
    low: float
    high: float


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank statistic (ties get average ranks); 0.5 when one class is absent."""
    return auc_interval(y, score).auc


def auc_interval(y: np.ndarray, score: np.ndarray, confidence: float = 0.95) -> AucInterval:
    """AUC with its DeLong standard error and two-sided `confidence` interval. With one class absent there
    is nothing to discriminate: AUC 0.5 and the interval [0, 1]."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    y = np.asarray(y)
    score = np.asarray(score, dtype=float)
    if y.shape != score.shape:
        raise ValueError(f"y and score: shapes {y.shape} and {score.shape} differ")
    pos = y == 1
    m, n = int(pos.sum()), int((~pos).sum())
    if m == 0 or n == 0:
        return AucInterval(0.5, 0.0, 0.0, 1.0)
    all_ranks = stats.rankdata(score)
    # Placement values from midranks: rank among all minus rank within the own class.
    v10 = (all_ranks[pos] - stats.rankdata(score[pos])) / n
    v01 = 1.0 - (all_ranks[~pos] - stats.rankdata(score[~pos])) / m
    value = float(v10.mean())
    var = (v10.var(ddof=1) if m > 1 else 0.0) / m + (v01.var(ddof=1) if n > 1 else 0.0) / n
    se = math.sqrt(max(float(var), 0.0))
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    return AucInterval(value, se, max(0.0, value - z * se), min(1.0, value + z * se))


def stationary_bootstrap_indices(
    n: int, mean_block: float, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_boot, n) resampling indices of the stationary bootstrap with mean block length `mean_block`."""
    if n < 1 or n_boot < 1:
        raise ValueError(f"n and n_boot must be >= 1, got {n} and {n_boot}")
    if mean_block < 1.0:
        raise ValueError(f"mean_block must be >= 1, got {mean_block}")
    starts = rng.integers(0, n, size=(n_boot, n))
    new = rng.random((n_boot, n)) < 1.0 / mean_block
    new[:, 0] = True
    pos = np.arange(n)
    # Position where the current block began, carried forward; the index walks on from that block's start.
    began = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    first = np.take_along_axis(starts, began, axis=1)
    return (first + pos - began) % n


def _sharpe_rows(r: np.ndarray) -> np.ndarray:
    sd = r.std(axis=-1, ddof=1)
    mean = r.mean(axis=-1)
    return np.divide(mean, sd, out=np.zeros_like(mean), where=sd > 0)


@dataclass(frozen=True)
class SharpeDifference:
    difference: float  # per-period Sharpe of A minus that of B on the observed series
    confidence: float  # share of resamples in which A's Sharpe exceeds B's
    low: float  # 5% and 95% quantiles of the resampled difference
    high: float
    block: float  # mean block length used, periods
    n_boot: int


def sharpe_difference(
    a: np.ndarray, b: np.ndarray, mean_block: float, n_boot: int, seed: int
) -> SharpeDifference:
    """Paired stationary-bootstrap comparison of the per-period Sharpe ratios of return series `a` and
    `b` (same periods). Seeded: the same inputs give the same answer."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b: need two 1-d series of one length, got {a.shape} and {b.shape}")
    observed = float(_sharpe_rows(a) - _sharpe_rows(b))
    if len(a) < 3:
        return SharpeDifference(observed, 0.0, observed, observed, mean_block, 0)
    idx = stationary_bootstrap_indices(len(a), min(mean_block, len(a)), n_boot, np.random.default_rng(seed))
    diff = _sharpe_rows(a[idx]) - _sharpe_rows(b[idx])
    low, high = np.quantile(diff, [0.05, 0.95])
    return SharpeDifference(observed, float((diff > 0).mean()), float(low), float(high), mean_block, n_boot)


def permutation_p_value(real: float, null: np.ndarray) -> float:
    """Share of the null distribution (plus the real value itself) at or above the real statistic."""
    null = np.asarray(null, dtype=float)
    return float((1 + np.sum(null >= real)) / (1 + len(null)))
