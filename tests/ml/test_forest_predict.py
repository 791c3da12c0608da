"""The folds' test probabilities come from `_core.lightgbm_probabilities`, which walks a LightGBM binary
model's trees from its text: on models trained by LightGBM itself (hypothesis-chosen data, shapes and
parameters; with NaN in training, zero-as-missing, or neither, so every missing type and default side
occurs) and rows holding NaN, zeros, values below LightGBM's zero threshold and infinities, the result
equals LightGBM's own `Booster.predict` bit for bit, for every iteration count. Models it does not cover
(linear trees, random forests, another objective) are refused, and `fold_probabilities` gives LightGBM's
answer for them."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from hybridtrader._core import lightgbm_probabilities
from hybridtrader.ml.models import Fitted, fold_probabilities
from hypothesis import given, settings
from hypothesis import strategies as st

SPECIAL = np.array([np.nan, 0.0, -0.0, 1e-40, -1e-36, np.inf, -np.inf])


def train(x: np.ndarray, y: np.ndarray, rounds: int, **params: object) -> lgb.Booster:
    base = {"objective": "binary", "verbosity": -1, "seed": 0, "deterministic": True, "num_threads": 1}
    return lgb.train({**base, **params}, lgb.Dataset(x, y), rounds)


def with_specials(x: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    out = x.copy()
    hit = rng.random(out.shape) < rate
    out[hit] = rng.choice(SPECIAL, hit.sum())
    return out


def bit_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(60, 600),
    cols=st.integers(1, 6),
    missing=st.sampled_from(["none", "nan", "zero"]),
    leaves=st.sampled_from([2, 7, 31]),
    rounds=st.integers(1, 40),
)
def fold_probabilities_equal_lightgbm(
    seed: int, n: int, cols: int, missing: str, leaves: int, rounds: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, cols))
    y = (x[:, 0] + rng.normal(size=n) > 0).astype(int)
    y[:2] = [0, 1]  # both classes
    params: dict[str, object] = {"num_leaves": leaves, "min_data_in_leaf": 5}
    if missing == "nan":
        x = with_specials(x, 0.15, rng)
    elif missing == "zero":
        x[rng.random(x.shape) < 0.2] = 0.0
        params["zero_as_missing"] = True
    booster = train(x, y, rounds, **params)
    rows = with_specials(rng.normal(size=(rng.integers(1, 200), cols)), 0.2, rng)
    for k in sorted({1, booster.num_trees() // 2 or 1, booster.num_trees()}):
        want = booster.predict(rows, num_iteration=k)
        got = lightgbm_probabilities(booster.model_to_string(num_iteration=k), rows, k, 1)
        assert bit_equal(got, want), (k, np.abs(got - want).max())


def test_hand_computed_stump() -> None:
    """One split on feature 1 at 0.5 (decision_type 2: no missing type, default left): NaN is 0, so it
    goes left; the probability is the sigmoid of the leaf's value."""
    model = (
        "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=1\n"
        "objective=binary sigmoid:1\n\nTree=0\nnum_leaves=2\nnum_cat=0\nsplit_feature=1\nthreshold=0.5\n"
        "decision_type=2\nleft_child=-1\nright_child=-2\nleaf_value=-0.75 2\nis_linear=0\n\nend of trees\n"
    )
    rows = np.array([[9.0, 0.5], [9.0, 0.6], [9.0, np.nan]])
    got = lightgbm_probabilities(model, rows, 0, 1)
    want = 1.0 / (1.0 + np.exp(-np.array([-0.75, 2.0, -0.75])))
    np.testing.assert_allclose(got, want, rtol=1e-15)


@pytest.mark.parametrize(
    "params",
    [{"linear_tree": True}, {"boosting": "rf", "bagging_fraction": 0.5, "bagging_freq": 1}],
    ids=["linear", "random-forest"],
)
def test_uncovered_models_refused_and_predicted_by_lightgbm(params: dict[str, object]) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] > 0).astype(int)
    booster = train(x, y, 10, **params)
    with pytest.raises(ValueError, match="not supported"):
        lightgbm_probabilities(booster.model_to_string(), x, 0, 1)
    fitted = Fitted(booster, booster.num_trees(), 0.0, np.zeros(3))
    got = fold_probabilities(fitted, x[:50], ["a", "b", "c"], 1)
    assert bit_equal(got, booster.predict(x[:50], num_iteration=booster.num_trees()))


def test_other_objective_and_shape_refused() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 3))
    booster = train(x, x[:, 0], 5, objective="regression")
    with pytest.raises(ValueError, match="binary objective"):
        lightgbm_probabilities(booster.model_to_string(), x, 0, 1)
    binary = train(x, (x[:, 0] > 0).astype(int), 5)
    with pytest.raises(ValueError, match="3 features, x has 2 columns"):
        lightgbm_probabilities(binary.model_to_string(), x[:, :2].copy(), 0, 1)


def test_fold_probabilities_equal_lightgbm_predict() -> None:
    """`fold_probabilities` on a fold's early-stopped model: LightGBM's prediction at the best
    iteration, bit for bit, on one thread or several."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(7000, 5))  # 4500 test rows: two threads' parts
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=7000) > 0).astype(int)
    valid = lgb.Dataset(x[2000:2500], y[2000:2500])
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 15},
        lgb.Dataset(x[:2000], y[:2000]),
        200,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(10, verbose=False)],
    )
    fitted = Fitted(booster, booster.best_iteration, 0.0, np.zeros(5))
    want = booster.predict(x[2500:], num_iteration=booster.best_iteration)
    for threads in (1, 2, 0):  # 0: every core
        assert bit_equal(fold_probabilities(fitted, x[2500:], list("abcde"), threads), want)
