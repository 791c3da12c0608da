"""Invariants of the allocation over random covariances, bounds, caps and overlays (hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
from hybridtrader.portfolio.allocation import METHODS, limit_turnover, target_weights
from hybridtrader.portfolio.capital_allocator import CapitalAllocator
from hypothesis import given, settings
from hypothesis import strategies as st

TOL = 1e-9


def _random_case(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(mu, cov): a factor-model covariance with 0-3 factors plus idiosyncratic noise, vols 0.2%-5% a day."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(0, 4))
    loadings = rng.normal(size=(n, k)) * rng.uniform(0, 2)
    corr_like = loadings @ loadings.T + np.diag(rng.uniform(0.05, 1.0, n))
    d = 1 / np.sqrt(np.diag(corr_like))
    vol = np.exp(rng.uniform(np.log(0.002), np.log(0.05), n))
    cov = (vol * d)[:, None] * corr_like * (vol * d)[None, :]
    mu = rng.normal(0.0003, 0.001, n)
    return mu, cov


@st.composite
def cases(draw: st.DrawFn) -> dict:
    n = draw(st.integers(2, 12))
    lo_share = draw(st.floats(0.0, 1.0))  # sum of the minimum weights, as a share of 1
    hi_extra = draw(st.floats(0.0, 3.0))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed ^ 0x5EED)
    lo = rng.dirichlet(np.ones(n)) * lo_share
    hi = lo + rng.dirichlet(np.ones(n)) * (1.0 - lo_share + hi_extra)  # sum(hi) >= 1 >= sum(lo)
    return {
        "seed": seed, "n": n, "lo": lo, "hi": hi,
        "method": draw(st.sampled_from(METHODS)),
        "leverage_cap": draw(st.floats(1.0, 3.0)),
        "vol_target": draw(st.none() | st.floats(0.02, 0.5)),
        "kelly_fraction": draw(st.floats(0.05, 1.0)),
    }


@settings(max_examples=300, deadline=None)
@given(cases())
def test_weights_sum_to_the_total_and_bounds_hold(case: dict) -> None:
    mu, cov = _random_case(case["seed"], case["n"])
    lo, hi = case["lo"], case["hi"]
    book = target_weights(case["method"], mu, cov, lo, hi, kelly_fraction=case["kelly_fraction"],
                          leverage_cap=case["leverage_cap"], vol_target=case["vol_target"])
    w = book.weights
    assert np.all(w >= lo - TOL) and np.all(w <= hi + TOL)
    assert abs(w.sum() - book.total) <= TOL
    assert lo.sum() - TOL <= book.total <= min(case["leverage_cap"], hi.sum()) + TOL
    if case["method"] != "kelly" and case["vol_target"] is None:
        assert abs(book.total - 1.0) <= TOL  # a budget method spends the whole budget


@settings(max_examples=200, deadline=None)
@given(cases(), st.floats(0.01, 2.0))
def test_turnover_limit_keeps_bounds_and_total(case: dict, limit: float) -> None:
    mu, cov = _random_case(case["seed"], case["n"])
    lo, hi = case["lo"], case["hi"]
    old = target_weights("equal_weight", mu, cov, lo, hi)
    new = target_weights(case["method"], mu, cov, lo, hi, kelly_fraction=case["kelly_fraction"])
    w, share = limit_turnover(old.weights, new.weights, limit)
    assert np.abs(w - old.weights).sum() <= limit + TOL
    assert 0 < share <= 1
    assert np.all(w >= lo - TOL) and np.all(w <= hi + TOL)
    expected_total = old.total + share * (new.total - old.total)
    assert abs(w.sum() - expected_total) <= TOL


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6), st.integers(0, 2**32 - 1), st.sampled_from(METHODS), st.floats(0.01, 1.0))
def test_allocator_bounds_and_totals_with_probation_and_turnover(n: int, seed: int, method: str,
                                                                 max_turnover: float) -> None:
    rng = np.random.default_rng(seed)
    names = [f"s{i}" for i in range(n)]
    lo = rng.uniform(0, 1 / n, n) * rng.integers(0, 2)
    hi = np.maximum(lo + rng.uniform(0.05, 1.0, n), 1.2 / n)
    bounds = {x: {"min_weight": float(lo[i]), "max_weight": float(hi[i])} for i, x in enumerate(names)}
    allocation = {"method": method, "max_turnover": max_turnover, "leverage_cap": 1.5, "bounds": bounds}
    config = {"strategies": {x: {} for x in names}, "portfolio": {"allocation": allocation}}
    allocator = CapitalAllocator(config, persist=False)
    mu, cov = _random_case(seed, n)
    draws = rng.multivariate_normal(mu, cov, size=60)
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(60)]
    for i, x in enumerate(names):
        start = int(rng.integers(0, 60))  # some strategies start late: on probation
        returns = dict(zip(days[start:], draws[start:, i].tolist(), strict=True))
        allocator.update_strategy_performance(x, returns)
    for equity in (1_000.0, 2_500.0):  # the second allocation is turnover-limited against the first
        capital = allocator.allocate_capital(equity, now=date(2024, 3, 1))
        w = np.array([capital[x] / equity for x in names])
        assert np.all(w >= lo - TOL) and np.all(w <= hi + TOL)
        assert lo.sum() - TOL <= w.sum() <= 1.5 + TOL
        if method != "kelly":
            assert abs(w.sum() - min(1.0, hi.sum())) <= TOL
