"""Capital allocation for 50 strategies (target: under 5 ms), ours beside skfolio in the same run.

Input: daily returns of 50 strategies over 1,260 sessions (5 years) from a seeded 3-factor model (vols
0.3%-2% a day); HYBRIDTRADER_BENCH=full adds 200 strategies. Each side starts from the return matrix:
- risk parity: ours = EWMA moments + `target_weights` (covariance checks, damped Newton, bounds); skfolio =
  `RiskBudgeting(VARIANCE)` fitted on the returns (sample covariance, cvxpy + Clarabel).
- Kelly: ours = EWMA moments + fractional Kelly with caps; skfolio = `MeanRisk` maximising
  mu'w - lambda w'Sigma w with lambda = 1 / (2 x fraction) and no budget (the same unconstrained optimum).
- allocator: `CapitalAllocator.plan` from recorded histories (date alignment, probation rule, estimates,
  allocation, turnover), ours only.
Before timing, each pair is checked to agree (same covariance given to both) so the race is like for like.
Both sides run with BLAS on one thread (threadpoolctl): these matrices are small, and on a loaded 2-core
machine OpenBLAS's worker threads made every call of either side 10-30x slower.
"""

from __future__ import annotations

import os
import warnings
from datetime import date, timedelta

import numpy as np
import pytest
from hybridtrader.portfolio.allocation import (
    check_covariance,
    ewma_moments,
    kelly_fractions,
    risk_parity_weights,
    target_weights,
)
from hybridtrader.portfolio.capital_allocator import CapitalAllocator
from skfolio import RiskMeasure
from skfolio.optimization import MeanRisk, ObjectiveFunction, RiskBudgeting
from threadpoolctl import threadpool_limits

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
SIZES = [50, 200] if FULL else [50]
SESSIONS = 1260
HALF_LIFE = 30.0
FRACTION = 0.5
TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}


def strategy_returns(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    loadings = rng.normal(size=(n, 3)) * 0.006
    idio = rng.normal(size=(SESSIONS, n)) * rng.uniform(0.003, 0.02, n)
    return rng.normal(size=(SESSIONS, 3)) @ loadings.T + idio + 0.0004


def bounds(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(n), np.full(n, 5.0 / n)


def ours_risk_parity(r: np.ndarray) -> np.ndarray:
    lo, hi = bounds(r.shape[1])
    mu, cov = ewma_moments(r, HALF_LIFE)
    return target_weights("risk_parity", mu, cov, lo, hi).weights


def ours_kelly(r: np.ndarray) -> np.ndarray:
    lo, hi = bounds(r.shape[1])
    mu, cov = ewma_moments(r, HALF_LIFE)
    return target_weights("kelly", mu, cov, lo, hi * 10, kelly_fraction=FRACTION, leverage_cap=2.0).weights


def skfolio_risk_parity(r: np.ndarray) -> np.ndarray:
    return RiskBudgeting(risk_measure=RiskMeasure.VARIANCE, solver_params=TIGHT).fit(r).weights_


def skfolio_kelly(r: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Clarabel's "may be inaccurate" at tight tolerances
        return MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_UTILITY,
                        risk_measure=RiskMeasure.VARIANCE, risk_aversion=1 / (2 * FRACTION), budget=None,
                        min_weights=None, max_weights=None, solver_params=TIGHT).fit(r).weights_


@pytest.fixture(autouse=True)
def one_blas_thread() -> object:
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n}strategies")
def returns(request: pytest.FixtureRequest) -> np.ndarray:
    r = strategy_returns(request.param)
    cov = np.cov(r, rowvar=False)  # both sides on skfolio's sample covariance: the answers agree
    np.testing.assert_allclose(risk_parity_weights(check_covariance(cov)), skfolio_risk_parity(r), atol=1e-6)
    f = kelly_fractions(r.mean(axis=0), cov, FRACTION)
    np.testing.assert_allclose(f, skfolio_kelly(r), atol=1e-4 * np.abs(f).max())
    return r


@pytest.mark.benchmark(group="risk parity")
def test_risk_parity_ours(benchmark, returns: np.ndarray) -> None:
    benchmark(ours_risk_parity, returns)


@pytest.mark.benchmark(group="risk parity")
def test_risk_parity_skfolio(benchmark, returns: np.ndarray) -> None:
    benchmark(skfolio_risk_parity, returns)


@pytest.mark.benchmark(group="kelly")
def test_kelly_ours(benchmark, returns: np.ndarray) -> None:
    benchmark(ours_kelly, returns)


@pytest.mark.benchmark(group="kelly")
def test_kelly_skfolio(benchmark, returns: np.ndarray) -> None:
    benchmark(skfolio_kelly, returns)


@pytest.mark.benchmark(group="allocator")
def test_allocator_plan_ours(benchmark, returns: np.ndarray, tmp_path) -> None:
    n = returns.shape[1]
    names = [f"s{i:03d}" for i in range(n)]
    # the seed strategies are merged into every config: switched off, the book is exactly `names`
    seeds = {s: {"enabled": False} for s in ("intraday_mean_reversion", "swing_trend_following")}
    book = {**seeds, **{x: {} for x in names}}
    allocator = CapitalAllocator({"data_dir": str(tmp_path), "strategies": book,
                                  "portfolio": {"allocation": {"max_weight": 5.0 / n,
                                                               "max_history_days": SESSIONS}}},
                                 persist=False)
    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(SESSIONS)]
    for i, name in enumerate(names):
        allocator.update_strategy_performance(name, dict(zip(days, returns[:, i].tolist(), strict=True)))
    result = benchmark(allocator.plan, 1_000_000.0)
    assert not result.probation and sum(result.capital.values()) == pytest.approx(1_000_000.0)
