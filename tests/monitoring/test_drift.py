"""PSI and KS drift measures against hand computation and scipy."""

from __future__ import annotations

import math
import warnings

import numpy as np
import polars as pl
import pytest
from hybridtrader.config import DriftConfig
from hybridtrader.monitoring.drift import feature_drift, ks, psi
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats


def test_psi_hand_computed() -> None:
    # Reference 0..99 with 4 bins: edges at its quartiles 24.75, 49.5, 74.25 -> 25% per bin.
    ref = np.arange(100.0)
    cur = np.array([10.0] * 50 + [30.0] * 30 + [60.0] * 20)  # shares 0.5, 0.3, 0.2, 0 (empty -> epsilon)
    p = np.array([0.5, 0.3, 0.2, 1e-4])
    q = np.full(4, 0.25)
    assert psi(ref, cur, bins=4, epsilon=1e-4) == pytest.approx(float(np.sum((p - q) * np.log(p / q))))


def test_psi_same_distribution_is_small_and_shift_is_large() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=20_000)
    assert psi(ref, rng.normal(size=20_000)) < 0.01
    assert psi(ref, rng.normal(0.5, 1.0, size=20_000)) > 0.2
    assert psi(ref, rng.normal(1.0, 1.0, size=20_000)) > 0.3


def test_psi_outside_reference_range_and_discrete_values() -> None:
    ref = np.arange(100.0)
    assert psi(ref, np.full(50, 1000.0)) > 5  # everything above the reference's top bin edge
    # A discrete feature: repeated quantiles merge into one edge instead of empty zero-width bins.
    d = np.array([0.0] * 80 + [1.0] * 20)
    assert psi(d, d) == 0.0
    assert psi(d, np.array([0.0] * 20 + [1.0] * 80)) == pytest.approx((0.2 - 0.8) * math.log(0.2 / 0.8) * 2)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=5, max_size=200),
    st.lists(st.floats(-1e3, 1e3), min_size=5, max_size=200),
)
def test_psi_non_negative_and_ks_matches_scipy(a: list[float], b: list[float]) -> None:
    assert psi(a, b) >= -1e-12
    stat, p = ks(a, b)
    with warnings.catch_warnings():  # scipy's own switch to the asymptotic p-value, as in `ks`
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
        ref = stats.ks_2samp(a, b)
    assert stat == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)


def test_feature_drift_thresholds() -> None:
    rng = np.random.default_rng(1)
    ref = pl.DataFrame({"a": rng.normal(size=5000), "b": rng.normal(size=5000), "name": ["x"] * 5000})
    cur = pl.DataFrame(
        {"a": rng.normal(size=5000), "b": rng.normal(1.0, 1.0, size=5000), "name": ["y"] * 5000}
    )
    out = {d.feature: d for d in feature_drift(ref, cur, DriftConfig())}
    assert set(out) == {"a", "b"}  # only numeric columns
    assert not out["a"].drifted and out["b"].drifted
    assert out["b"].ks == pytest.approx(stats.ks_2samp(ref["b"].to_numpy(), cur["b"].to_numpy()).statistic)
    with pytest.raises(ValueError, match=r"\['c'\]"):
        feature_drift(ref, cur, DriftConfig(), ["c"])
    with pytest.raises(ValueError, match="no finite values"):
        psi([np.nan], [1.0])
