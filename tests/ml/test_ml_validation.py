"""Purged k-fold / walk-forward splits: structural properties and a planted-leakage experiment."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hybridtrader.config import PurgedKFoldConfig, WalkForwardConfig
from hybridtrader.ml.validation import inner_split, purged_kfold_splits, walk_forward_splits
from hypothesis import given, settings
from hypothesis import strategies as st


def intervals(n: int, max_len: int, seed: int, ties: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t0 = np.repeat(np.arange(n // ties + 1), ties)[:n].astype(np.int64) * 60
    t1 = t0 + rng.integers(0, max_len + 1, len(t0)) * 60
    return t0, t1


def overlaps(a0: int, a1: int, b0: int, b1: int) -> bool:
    return a0 <= b1 and b0 <= a1


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(40, 300),
    max_len=st.integers(0, 30),
    k=st.integers(2, 6),
    seed=st.integers(0, 10_000),
    embargo=st.sampled_from([0.0, 0.02, 0.05]),
    ties=st.integers(1, 3),
)
def test_purged_kfold_properties(n: int, max_len: int, k: int, seed: int, embargo: float, ties: int) -> None:
    t0, t1 = intervals(n, max_len, seed, ties)
    grid = np.unique(np.concatenate([t0, t1]))
    h = math.ceil(embargo * len(grid))
    splits = purged_kfold_splits(t0, t1, PurgedKFoldConfig(n_splits=k, embargo_pct=embargo))
    tested = np.concatenate([s.test for s in splits])
    assert sorted(tested.tolist()) == list(range(n))  # every sample tested exactly once
    for s in splits:
        start, end = t0[s.test].min(), t1[s.test].max()
        assert len(np.intersect1d(s.train, s.test)) == 0
        # all samples that share a t0 are on the same side
        assert not set(t0[s.train]) & set(t0[s.test])
        for i in s.train:  # purge: no training label overlaps the test span
            assert not overlaps(t0[i], t1[i], start, end)
        # embargo: nothing starts within the h bar times after the span
        after = grid[grid > end][:h]
        if len(after):
            assert not np.any((t0[s.train] > end) & (t0[s.train] <= after[-1]))
        # and nothing else was dropped: every excluded sample overlaps or is embargoed
        limit = after[-1] if len(after) else end
        dropped = np.setdiff1d(np.setdiff1d(np.arange(n), s.test), s.train)
        for i in dropped:
            assert overlaps(t0[i], t1[i], start, limit)


def test_walk_forward_expanding_and_sliding() -> None:
    t0, t1 = intervals(1000, 10, 0)
    cfg = WalkForwardConfig(train_fraction=0.3, test_fraction=0.1, window="expanding")
    splits = walk_forward_splits(t0, t1, cfg)
    assert len(splits) == 7
    for s in splits:
        start = t0[s.test].min()
        assert t1[s.train].max() < start  # purged: every training label ends before the test block
        assert t0[s.train].min() == t0.min()
    assert all(len(b.train) > len(a.train) for a, b in itertools.pairwise(splits))
    sliding = walk_forward_splits(
        t0, t1, WalkForwardConfig(train_fraction=0.3, test_fraction=0.1, window="sliding")
    )
    spans = [t0[s.train].max() - t0[s.train].min() for s in sliding]
    assert max(spans) - min(spans) <= 60 * 15  # window length constant up to the purge
    stepped = walk_forward_splits(
        t0, t1, WalkForwardConfig(train_fraction=0.3, test_fraction=0.2, step_fraction=0.1)
    )
    assert len(stepped) == 7 and len(np.intersect1d(stepped[0].test, stepped[1].test)) > 0


def test_inner_split_is_purged() -> None:
    t0, t1 = intervals(500, 20, 1)
    train = np.arange(100, 500)
    sp = inner_split(train, t0, t1, 0.2)
    assert len(sp.test) == 80
    assert t1[sp.train].max() < t0[sp.test].min()
    with pytest.raises(ValueError, match="fraction"):
        inner_split(train, t0, t1, 1.5)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="t1 < t0"):
        purged_kfold_splits(np.array([5, 6]), np.array([4, 7]), PurgedKFoldConfig())
    with pytest.raises(ValueError, match="n_splits=5"):
        purged_kfold_splits(np.array([1, 2]), np.array([1, 2]), PurgedKFoldConfig())


def nearest_neighbour_accuracy(t0: np.ndarray, sym: np.ndarray, y: np.ndarray, splits, use_train) -> float:
    """1-nearest-neighbour in time within each symbol: predict a test label by the closest training label."""
    hits = total = 0
    for s in splits:
        train = use_train(s)
        for k in np.unique(sym[s.test]):
            tr = train[sym[train] == k]
            te = s.test[sym[s.test] == k]
            order = np.argsort(t0[tr])
            times, labels = t0[tr][order], y[tr][order]
            pos = np.clip(np.searchsorted(times, t0[te]), 1, len(times) - 1)
            left_closer = np.abs(t0[te] - times[pos - 1]) <= np.abs(times[pos] - t0[te])
            pred = np.where(left_closer, labels[pos - 1], labels[pos])
            hits += int((pred == y[te]).sum())
            total += len(te)
    return hits / total


def test_planted_leakage_is_removed_by_the_purge() -> None:
    """Labels are signs of overlapping forward sums of pure noise (50 independent symbols, horizon 20 bars):
    nothing is predictable out of sample. Without purging, a nearest-neighbour-in-time model scores far
    above chance, because training samples next to a test block share most of their label window with
    it; with the purge and embargo the same model on the same test blocks is back at chance."""
    rng = np.random.default_rng(0)
    n_sym, n_t, h = 50, 400, 20
    noise = rng.normal(size=(n_sym, n_t + h))
    csum = np.concatenate([np.zeros((n_sym, 1)), np.cumsum(noise, axis=1)], axis=1)
    idx = np.arange(n_t)
    y = (csum[:, idx + h + 1] - csum[:, idx + 1] > 0).astype(int).ravel()  # sum of noise[t+1 .. t+h]
    t0 = np.tile(idx, n_sym).astype(np.int64)
    sym = np.repeat(np.arange(n_sym), n_t)
    order = np.argsort(t0, kind="stable")
    t0, sym, y = t0[order], sym[order], y[order]
    t1 = t0 + h
    splits = purged_kfold_splits(t0, t1, PurgedKFoldConfig(n_splits=20, embargo_pct=0.01))
    leaky = nearest_neighbour_accuracy(t0, sym, y, splits, lambda s: np.setdiff1d(np.arange(len(y)), s.test))
    purged = nearest_neighbour_accuracy(t0, sym, y, splits, lambda s: s.train)
    assert leaky > 0.7, leaky
    assert abs(purged - 0.5) < 0.05, purged
