"""Capital allocation arithmetic on numpy arrays: estimates, base weights, bounds, overlays, turnover.

Pure functions (no state, no config) so the allocator, the tests and the benchmarks share one code path.
Weights are shares of equity; returns are simple returns per period (daily); covariances are per period.

- EWMA moments: weight of the return k periods old is proportional to lambda^k, lambda = 0.5^(1/half_life);
  mean = sum a_k r_k, covariance = sum a_k (r_k - mean)(r_k - mean)' / (1 - sum a_k^2) (a normalised to
  sum 1; the divisor makes it unbiased like the sample covariance, and equal to it when lambda = 1).
- Risk parity (equal risk contribution, Spinu 2013 / Roncalli): y = argmin 1/2 y'Sigma y - b' ln y over y > 0
  by damped Newton; at the optimum y_i (Sigma y)_i = b_i, so w = y / sum(y) has risk contributions
  w_i (Sigma w)_i proportional to the budgets b. Solved until max_i |y_i (Sigma y)_i / b_i - 1| <= tol;
  not reaching it is a DataError, never a fall-back.
- Kelly for several strategies: f = fraction x Sigma^-1 (mu - r) (maximiser of the quadratic growth
  approximation g(f) = r + f'(mu - r) - 1/2 f'Sigma f), scale-free in the period: mu and Sigma both scale
  with it.
- Bounds: w_i = clip(c x raw_i, lo_i, hi_i) with the one scale c that makes sum(w) = total (the raw
  proportions are kept among the strategies no bound holds).
- Volatility target: the book's total is scaled by target / sqrt(w'Sigma w x periods_per_year), within the
  leverage cap.
- Turnover: a move of sum |target - current| above the limit goes that share of the way: current +
  (limit / turnover) (target - current), a convex combination, so bounds and totals that hold at both ends
  hold on the way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hybridtrader.errors import ConfigError, DataError

Method = Literal["equal_weight", "inverse_volatility", "risk_parity", "kelly"]
METHODS: tuple[Method, ...] = ("equal_weight", "inverse_volatility", "risk_parity", "kelly")
MAX_NEWTON_STEPS = 100
# Damped Newton takes full steps once the Newton decrement is below this (Nesterov's (3 - sqrt 5) / 2 bound).
_FULL_STEP_DECREMENT = 0.95 * (3.0 - math.sqrt(5.0)) / 2.0
# An eigenvalue below this share of the largest one counts as zero (singular covariance).
_SINGULAR_RATIO = 1e-12


def ewma_lambda(half_life: float) -> float:
    """The per-period decay factor lambda = 0.5^(1/half_life)."""
    return 0.5 ** (1.0 / half_life)


def ewma_moments(returns: np.ndarray, half_life: float) -> tuple[np.ndarray, np.ndarray]:
    """EWMA mean (n,) and covariance (n, n) of `returns` (T periods x n strategies, oldest row first)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        raise DataError(f"returns: need a (periods >= 2, strategies) matrix, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise DataError("returns: NaN or infinite values")
    age = np.arange(r.shape[0] - 1, -1, -1, dtype=np.float64)
    a = ewma_lambda(half_life) ** age
    a /= a.sum()
    mean = a @ r
    d = r - mean
    cov = (d * a[:, None]).T @ d / (1.0 - a @ a)
    return mean, (cov + cov.T) / 2.0


def check_covariance(cov: np.ndarray, names: Sequence[str] | None = None) -> np.ndarray:
    """`cov` as a float array after checking it is square, finite, symmetric and positive definite.

    A DataError names the fault: a negative eigenvalue (not PSD) or one that is zero relative to the
    largest (singular: some strategies are collinear; the largest loadings of its eigenvector are named)."""
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise DataError(f"covariance: need a non-empty square matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise DataError("covariance: NaN or infinite entries")
    scale = float(np.abs(c).max())
    if scale == 0.0:
        raise DataError("covariance: all zero (strategies without any variance)")
    if not np.allclose(c, c.T, rtol=0.0, atol=1e-12 * scale):
        raise DataError("covariance: not symmetric")
    vals = np.linalg.eigvalsh(c)  # eigenvectors only when naming a fault (they cost 8x more)
    if vals[0] <= _SINGULAR_RATIO * vals[-1]:
        vals, vecs = np.linalg.eigh(c)
        labels = list(names) if names is not None else [str(i) for i in range(c.shape[0])]
        loaded = np.argsort(-np.abs(vecs[:, 0]))[:3]
        involved = ", ".join(labels[i] for i in sorted(loaded) if abs(vecs[i, 0]) > 0.1)
        kind = "not positive semi-definite" if vals[0] < -_SINGULAR_RATIO * vals[-1] else "singular"
        raise DataError(f"covariance: {kind} (smallest eigenvalue {vals[0]:.3g}, largest {vals[-1]:.3g}; "
                        f"involves {involved})")
    return c


def inverse_volatility_weights(cov: np.ndarray) -> np.ndarray:
    """w_i proportional to 1 / sigma_i, summing to 1."""
    inv = 1.0 / np.sqrt(np.diag(cov))
    return inv / inv.sum()


def risk_parity_weights(cov: np.ndarray, budgets: np.ndarray | None = None, tol: float = 1e-10
                        ) -> np.ndarray:
    """Weights (sum 1) whose risk contributions w_i (Sigma w)_i are proportional to `budgets` (default
    equal), by damped Newton on 1/2 y'Sigma y - b' ln y. `cov` must be positive definite (check_covariance).
    """
    n = cov.shape[0]
    b = np.full(n, 1.0 / n) if budgets is None else np.asarray(budgets, dtype=np.float64) / np.sum(budgets)
    s = cov / np.mean(np.diag(cov))  # the weights do not depend on the scale; keep the numbers near 1
    y = b / math.sqrt(float(b @ s @ b))
    residual = math.inf
    for _ in range(MAX_NEWTON_STEPS):
        sy = s @ y
        residual = float(np.max(np.abs(y * sy / b - 1.0)))
        if residual <= tol:
            return y / y.sum()
        grad = sy - b / y
        hess = s + np.diag(b / (y * y))
        step = np.linalg.solve(hess, grad)
        decrement = math.sqrt(max(float(grad @ step), 0.0))
        y = y - step / (1.0 + decrement) if decrement > _FULL_STEP_DECREMENT else y - step
    raise DataError(f"risk parity: no convergence in {MAX_NEWTON_STEPS} Newton steps (relative risk-budget "
                    f"error {residual:.3g} > tolerance {tol:g}); the covariance is too ill-conditioned")


def kelly_fractions(mu: np.ndarray, cov: np.ndarray, fraction: float, risk_free: float = 0.0) -> np.ndarray:
    """Fractional multi-strategy Kelly f = fraction x Sigma^-1 (mu - risk_free), before any cap.
    mu, risk_free and cov in the same period."""
    return fraction * np.linalg.solve(cov, np.asarray(mu, dtype=np.float64) - risk_free)


def base_weights(method: Method, mu: np.ndarray, cov: np.ndarray, *, kelly_fraction: float = 0.5,
                 risk_free: float = 0.0, tol: float = 1e-10) -> np.ndarray:
    """The method's raw weights: sum 1 for equal weight, inverse volatility and risk parity; the fractional
    Kelly fractions (any sign, any sum) for kelly."""
    n = cov.shape[0]
    if method == "equal_weight":
        return np.full(n, 1.0 / n)
    if method == "inverse_volatility":
        return inverse_volatility_weights(cov)
    if method == "risk_parity":
        return risk_parity_weights(cov, tol=tol)
    if method == "kelly":
        return kelly_fractions(mu, cov, kelly_fraction, risk_free)
    raise ConfigError(
        f"portfolio.allocation.method: unknown method {method!r} (allowed: {', '.join(METHODS)})")


def fit_to_bounds(raw: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: float) -> np.ndarray:
    """w = clip(c x raw, lo, hi) with the scale c >= 0 that makes sum(w) = total (raw >= 0). A zero raw
    weight stays at its minimum, so a total above sum(hi where raw > 0) + sum(lo where raw = 0) gets that
    most (`build_book` never asks for more).

    sum(clip(c raw, lo, hi)) is piecewise linear and non-decreasing in c with breakpoints lo_i/raw_i and
    hi_i/raw_i; c is found exactly on the segment that reaches `total`."""
    if not lo.sum() - 1e-12 <= total <= hi.sum() + 1e-12:
        raise ConfigError(f"portfolio.allocation: bounds cannot hold a total of {total:.6g} "
                          f"(minimum weights sum to {lo.sum():.6g}, maximum weights to {hi.sum():.6g})")
    pos = raw > 0
    if not pos.any():
        return lo.copy()
    knots = np.unique(np.concatenate(([0.0], lo[pos] / raw[pos], hi[pos] / raw[pos])))
    sums = np.clip(knots[:, None] * raw, lo, hi).sum(axis=1)
    j = int(np.searchsorted(sums, total - 1e-15))
    if j >= knots.size:  # every weight with raw > 0 at its upper bound
        return np.clip(knots[-1] * raw, lo, hi)
    if j == 0 or sums[j] == sums[j - 1]:
        c = knots[j]
    else:
        c = knots[j - 1] + (total - sums[j - 1]) * (knots[j] - knots[j - 1]) / (sums[j] - sums[j - 1])
    return np.clip(c * raw, lo, hi)


def book_volatility(w: np.ndarray, cov: np.ndarray, periods_per_year: int) -> float:
    """Annualised volatility sqrt(w'Sigma w x periods_per_year) of a book of weights."""
    return math.sqrt(max(float(w @ cov @ w), 0.0) * periods_per_year)


@dataclass(frozen=True)
class Book:
    """Weights (shares of equity) and how they came about."""

    weights: np.ndarray
    total: float  # sum of the weights: the share of equity allocated
    notes: list[str] = field(default_factory=list)


def build_book(raw: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, budget: bool, leverage_cap: float,
               cov: np.ndarray | None = None, vol_target: float | None = None, periods_per_year: int = 252
               ) -> Book:
    """Turn raw weights into a book within the bounds and the leverage cap.

    budget: the raw weights are a budget to spend in full (total 1); otherwise (Kelly) the total is the sum
    of the positive raw weights (a negative Kelly fraction gets the strategy's minimum weight: no capital is
    ever negative). With a vol target (needs cov) the total is scaled toward it. The total is then clamped to
    [sum lo, min(leverage_cap, most the bounds allow)]."""
    notes = []
    pos = np.maximum(raw, 0.0)
    total = 1.0 if budget else float(pos.sum())
    if vol_target is not None and cov is not None and pos.any():
        w = fit_to_bounds(pos, lo, hi, float(np.clip(total, lo.sum(), hi.sum())))
        vol = book_volatility(w, cov, periods_per_year)
        if vol > 0:
            total = float(w.sum()) * vol_target / vol
            notes.append(f"vol target {vol_target:.2%}: book vol {vol:.2%} -> total x{vol_target / vol:.3f}")
    cap = min(leverage_cap, float(hi[pos > 0].sum() + lo[pos <= 0].sum()))
    if lo.sum() > cap + 1e-12:
        raise ConfigError(f"portfolio.allocation: minimum weights sum to {lo.sum():.6g}, above the "
                          f"leverage cap ({leverage_cap:g})")
    clamped = float(np.clip(total, lo.sum(), cap))
    if not math.isclose(clamped, total, rel_tol=1e-12, abs_tol=1e-15):
        notes.append(f"total {total:.4f} clamped to {clamped:.4f} (leverage cap {leverage_cap:g}, bounds)")
    w = fit_to_bounds(pos, lo, hi, clamped)
    return Book(w, float(w.sum()), notes)


def limit_turnover(current: np.ndarray, target: np.ndarray, max_turnover: float | None
                   ) -> tuple[np.ndarray, float]:
    """(weights, share of the move taken): the target, or the convex step toward it whose turnover
    sum |w - current| equals max_turnover."""
    turnover = float(np.abs(target - current).sum())
    if max_turnover is None or turnover <= max_turnover:
        return target, 1.0
    share = max_turnover / turnover
    return current + share * (target - current), share


def target_weights(method: Method, mu: np.ndarray, cov: np.ndarray, lo: np.ndarray, hi: np.ndarray, *,
                   kelly_fraction: float = 0.5, risk_free: float = 0.0, leverage_cap: float = 1.0,
                   vol_target: float | None = None, periods_per_year: int = 252, tol: float = 1e-10,
                   names: Sequence[str] | None = None) -> Book:
    """The allocation of one rebalance from estimates: base weights of `method`, then bounds, vol target
    and leverage cap (`build_book`). risk_free is per period, like mu."""
    c = check_covariance(cov, names)
    raw = base_weights(method, np.asarray(mu, dtype=np.float64), c, kelly_fraction=kelly_fraction,
                       risk_free=risk_free, tol=tol)
    return build_book(raw, lo, hi, budget=method != "kelly", leverage_cap=leverage_cap, cov=c,
                      vol_target=vol_target, periods_per_year=periods_per_year)
