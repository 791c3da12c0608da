"""DeLong AUC interval against a brute-force placement-value computation and coverage; the stationary
bootstrap's blocks; the paired Sharpe comparison; the permutation p-value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hybridtrader.ml.significance import (
    auc,
    auc_interval,
    permutation_p_value,
    sharpe_difference,
    stationary_bootstrap_indices,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats


def brute_force_delong(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """AUC and DeLong variance straight from the definition: psi(x, y) = 1 if x > y, 1/2 if equal."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), float(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(8, 80), st.booleans())
def test_delong_matches_the_definition(seed: int, n: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:4] = [0, 1, 0, 1]  # both classes, two of each at least (a variance needs two)
    s = rng.normal(size=n) + 0.7 * y
    if ties:
        s = np.round(s, 0)
    want_auc, want_var = brute_force_delong(y, s)
    got = auc_interval(y, s)
    assert got.auc == pytest.approx(want_auc, abs=1e-12) and auc(y, s) == pytest.approx(want_auc, abs=1e-12)
    assert got.se == pytest.approx(math.sqrt(want_var), rel=1e-9, abs=1e-15)
    z = stats.norm.ppf(0.975)
    assert got.low == pytest.approx(max(0.0, want_auc - z * math.sqrt(want_var)), abs=1e-12)


def test_delong_interval_covers_the_true_auc() -> None:
    """Binormal scores with separation d: true AUC = Phi(d / sqrt(2)); the 95% interval holds it about
    95% of the time, and under no signal excludes 0.5 only about 5% of the time."""
    rng = np.random.default_rng(3)
    for d, lo, hi in ((0.5, 0.92, 0.98), (0.0, 0.92, 0.98)):
        truth = stats.norm.cdf(d / math.sqrt(2))
        hits = 0
        for _ in range(400):
            y = rng.integers(0, 2, 300)
            s = rng.normal(size=300) + d * y
            iv = auc_interval(y, s)
            hits += iv.low <= truth <= iv.high
        assert lo <= hits / 400 <= hi, (d, hits)


def test_one_class_has_no_discrimination() -> None:
    iv = auc_interval(np.ones(5, dtype=int), np.arange(5.0))
    assert (iv.auc, iv.low, iv.high) == (0.5, 0.0, 1.0)
    with pytest.raises(ValueError, match="confidence"):
        auc_interval(np.array([0, 1]), np.array([0.1, 0.2]), confidence=1.0)


def test_stationary_bootstrap_blocks() -> None:
    rng = np.random.default_rng(0)
    idx = stationary_bootstrap_indices(500, 10.0, 200, rng)
    assert idx.shape == (200, 500) and idx.min() >= 0 and idx.max() < 500
    steps = (np.diff(idx, axis=1) % 500) == 1  # continuing a block (wrapping around the end)
    # a new block starts with probability 1/L (a fresh start continues by chance with prob 1/n)
    assert 1 - steps.mean() == pytest.approx(0.1 - 0.1 / 500, abs=0.005)
    assert np.all(idx[:, 0] >= 0)
    with pytest.raises(ValueError, match="mean_block"):
        stationary_bootstrap_indices(10, 0.5, 3, rng)


def test_sharpe_difference_is_paired_and_seeded() -> None:
    rng = np.random.default_rng(1)
    common = rng.normal(0, 1, 400)
    a = common + rng.normal(0.25, 0.3, 400)  # the same returns plus a clear edge
    b = common
    d = sharpe_difference(a, b, 5.0, 1000, seed=7)
    assert d.difference > 0 and d.confidence > 0.99 and d.low > 0
    assert d == sharpe_difference(a, b, 5.0, 1000, seed=7)
    same = sharpe_difference(b, b, 5.0, 1000, seed=7)
    assert same.difference == 0.0 and same.confidence == 0.0  # identical strategies never "beat"
    noise = [sharpe_difference(rng.normal(0, 1, 300), rng.normal(0, 1, 300), 5.0, 300, 1).confidence
             for _ in range(60)]  # fmt: skip
    assert np.mean(np.array(noise) >= 0.95) < 0.15  # no edge: rarely confident


def test_permutation_p_value() -> None:
    assert permutation_p_value(2.0, np.array([0.0, 1.0, 3.0])) == pytest.approx(2 / 4)
    assert permutation_p_value(5.0, np.array([0.0, 1.0, 3.0])) == pytest.approx(1 / 4)
    assert permutation_p_value(0.0, np.array([])) == 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=1, max_size=60), st.integers(0, 4), st.integers(0, 1000))
def test_shuffle_within_keeps_every_block_composition(labels: list[int], n_blocks: int, seed: int) -> None:
    from hybridtrader.ml.pipeline import shuffle_within

    y = np.array(labels)
    block = np.arange(len(y)) % (n_blocks + 1) - 1  # -1: the never-tested start
    out = shuffle_within(y, block, np.random.default_rng(seed))
    for b in np.unique(block):
        assert sorted(out[block == b]) == sorted(y[block == b])
