"""Allocation arithmetic against closed forms and independent references (skfolio on real S&P 500 returns,
scipy's optimiser, Polars' EWM statistics)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.optimize
from hybridtrader.errors import DataError
from hybridtrader.portfolio.allocation import (
    check_covariance,
    ewma_moments,
    fit_to_bounds,
    inverse_volatility_weights,
    kelly_fractions,
    limit_turnover,
    risk_parity_weights,
    target_weights,
)
from skfolio import RiskMeasure
from skfolio.datasets import load_sp500_dataset
from skfolio.optimization import RiskBudgeting
from skfolio.preprocessing import prices_to_returns


@pytest.fixture(scope="module")
def sp500_returns() -> np.ndarray:
    """Real daily returns of 20 S&P 500 stocks, 1990-2022 (shipped inside skfolio, no network)."""
    return prices_to_returns(load_sp500_dataset()).to_numpy()


def _equal_risk(w: np.ndarray, cov: np.ndarray) -> None:
    rc = w * (cov @ w)
    np.testing.assert_allclose(rc, np.full(w.size, w @ cov @ w / w.size), rtol=1e-8, atol=0)


def test_diagonal_covariance_gives_inverse_volatility() -> None:
    vol = np.array([0.01, 0.02, 0.005, 0.04])
    cov = np.diag(vol**2)
    w = risk_parity_weights(check_covariance(cov))
    np.testing.assert_allclose(w, (1 / vol) / (1 / vol).sum(), rtol=1e-12)
    _equal_risk(w, cov)


@pytest.mark.parametrize("rho", [-0.2, 0.0, 0.3, 0.9])
def test_equal_correlations_give_inverse_volatility(rho: float) -> None:
    vol = np.array([0.011, 0.017, 0.008, 0.03, 0.022])
    corr = np.full((5, 5), rho) + (1 - rho) * np.eye(5)
    cov = vol[:, None] * corr * vol[None, :]
    w = risk_parity_weights(check_covariance(cov))
    np.testing.assert_allclose(w, inverse_volatility_weights(cov), rtol=1e-12)
    np.testing.assert_allclose(w, (1 / vol) / (1 / vol).sum(), rtol=1e-12)
    _equal_risk(w, cov)


def test_risk_parity_equals_skfolio_on_real_returns(sp500_returns: np.ndarray) -> None:
    cov = np.cov(sp500_returns, rowvar=False)
    ours = risk_parity_weights(check_covariance(cov))
    ref = RiskBudgeting(
        risk_measure=RiskMeasure.VARIANCE,
        solver_params={"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12},
    ).fit(sp500_returns).weights_
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    _equal_risk(ours, cov)


@pytest.mark.parametrize("window", [slice(0, 500), slice(4000, 4750), slice(-250, None)])
def test_every_risk_contribution_equal_on_real_windows(sp500_returns: np.ndarray, window: slice) -> None:
    cov = np.cov(sp500_returns[window], rowvar=False)
    _equal_risk(risk_parity_weights(check_covariance(cov)), cov)


def test_risk_parity_never_falls_back() -> None:
    cov = np.cov(np.random.default_rng(3).normal(size=(200, 30)), rowvar=False)
    with pytest.raises(DataError, match="no convergence"):
        risk_parity_weights(cov, tol=0.0)  # unreachable tolerance: an error, not equal weights


def test_kelly_is_fraction_of_inverse_covariance_times_excess_mean(sp500_returns: np.ndarray) -> None:
    r = sp500_returns[-750:, :6]
    mu, cov = r.mean(axis=0), np.cov(r, rowvar=False)
    rf = 0.0001
    f = kelly_fractions(mu, cov, 0.5, rf)
    # independent: maximise the quadratic growth rate f'(mu - rf) - 1/2 f'Sigma f numerically
    res = scipy.optimize.minimize(lambda x: -(x @ (mu - rf) - 0.5 * x @ cov @ x), np.zeros(6),
                                  jac=lambda x: -((mu - rf) - cov @ x), method="BFGS",
                                  options={"gtol": 1e-14})
    np.testing.assert_allclose(f, 0.5 * res.x, rtol=1e-5)


def test_kelly_hand_case() -> None:
    # uncorrelated: f_i = fraction * mu_i / sigma_i^2
    f = kelly_fractions(np.array([0.001, 0.0005]), np.diag([0.0001, 0.0004]), 0.25)
    np.testing.assert_allclose(f, [0.25 * 10.0, 0.25 * 1.25], rtol=1e-14)


def test_kelly_caps_apply_after_the_formula() -> None:
    mu, cov = np.array([0.001, 0.0005]), np.diag([0.0001, 0.0004])
    book = target_weights("kelly", mu, cov, np.zeros(2), np.full(2, 2.0), kelly_fraction=0.25,
                          leverage_cap=1.5)
    # raw 2.5 and 0.3125 (sum 2.8125 > leverage cap 1.5): scaled down together to the cap
    assert book.total == pytest.approx(1.5, rel=1e-12)
    np.testing.assert_allclose(book.weights, np.array([2.5, 0.3125]) * 1.5 / 2.8125, rtol=1e-12)


def test_ewma_moments_match_polars_ewm() -> None:
    rng = np.random.default_rng(7)
    r = rng.normal(0.0005, 0.01, size=(120, 3)) @ np.array([[1, 0.3, 0], [0, 1, 0.5], [0, 0, 1.0]])
    mu, cov = ewma_moments(r, 10.0)
    cols = {f"s{i}": r[:, i] for i in range(3)}
    frame = pl.DataFrame(cols).with_columns((pl.col("s0") + pl.col("s1")).alias("sum01"))
    last = frame.select(
        *[pl.col(c).ewm_mean(half_life=10.0, adjust=True).last().alias(f"m_{c}") for c in cols],
        *[pl.col(c).ewm_var(half_life=10.0, adjust=True, bias=False).last().alias(f"v_{c}")
          for c in [*cols, "sum01"]],
    ).row(0, named=True)
    np.testing.assert_allclose(mu, [last[f"m_s{i}"] for i in range(3)], rtol=1e-10)
    np.testing.assert_allclose(np.diag(cov), [last[f"v_s{i}"] for i in range(3)], rtol=1e-10)
    cov01 = (last["v_sum01"] - last["v_s0"] - last["v_s1"]) / 2
    assert cov[0, 1] == pytest.approx(cov01, rel=1e-8)


def test_ewma_with_no_decay_is_the_sample_covariance() -> None:
    r = np.random.default_rng(1).normal(size=(50, 4))
    mu, cov = ewma_moments(r, 1e15)
    np.testing.assert_allclose(mu, r.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(cov, np.cov(r, rowvar=False), rtol=1e-9)


def test_bad_covariances_are_named() -> None:
    with pytest.raises(DataError, match=r"singular .*involves b, c"):
        x = np.random.default_rng(0).normal(size=(100, 2))
        check_covariance(np.cov(np.column_stack([x, x[:, 1]]), rowvar=False), ["a", "b", "c"])
    with pytest.raises(DataError, match="not positive semi-definite"):
        check_covariance(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(DataError, match="not symmetric"):
        check_covariance(np.array([[1.0, 0.2], [0.1, 1.0]]))
    with pytest.raises(DataError, match="NaN"):
        check_covariance(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(DataError, match="NaN"):
        ewma_moments(np.array([[0.01, 0.02], [np.nan, 0.0], [0.0, 0.0]]), 5.0)


def test_fit_to_bounds_keeps_proportions_of_the_free_weights() -> None:
    raw = np.array([0.5, 0.3, 0.15, 0.05])
    w = fit_to_bounds(raw, np.array([0.0, 0.0, 0.0, 0.1]), np.array([0.4, 1.0, 1.0, 1.0]), 1.0)
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    assert w[0] == pytest.approx(0.4) and w[3] == pytest.approx(0.1)
    assert w[1] / w[2] == pytest.approx(2.0)  # the free ones keep their ratio


def test_turnover_limit_moves_part_of_the_way() -> None:
    cur, tgt = np.array([0.5, 0.5, 0.0]), np.array([0.2, 0.3, 0.5])
    w, share = limit_turnover(cur, tgt, 0.4)
    assert share == pytest.approx(0.4)
    assert np.abs(w - cur).sum() == pytest.approx(0.4)
    assert w.sum() == pytest.approx(1.0)


def test_vol_target_scales_the_book_within_the_leverage_cap() -> None:
    vol = np.array([0.01, 0.02])  # daily; uncorrelated
    cov = np.diag(vol**2)
    lo, hi = np.zeros(2), np.full(2, 3.0)
    # equal weights 0.5 / 0.5: annual book vol = sqrt(0.25 (1e-4 + 4e-4) 252)
    book_vol = np.sqrt(0.25 * 5e-4 * 252)
    book = target_weights("equal_weight", np.zeros(2), cov, lo, hi, vol_target=0.10, leverage_cap=3.0)
    assert book.total == pytest.approx(0.10 / book_vol, rel=1e-12)
    np.testing.assert_allclose(book.weights, [book.total / 2] * 2, rtol=1e-12)
    capped = target_weights("equal_weight", np.zeros(2), cov, lo, hi, vol_target=0.50, leverage_cap=1.2)
    assert capped.total == pytest.approx(1.2, rel=1e-12)  # 0.50 / 0.177 = 2.8x wanted, capped at 1.2
    assert any("clamped" in note for note in capped.notes)
