"""ml.models.run_folds: fold tasks on the task runner, data shared; each fold's model seed is its task seed;
a fold that fails twice is a ModelError naming the fold."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from hybridtrader.config import ComputeConfig
from hybridtrader.errors import ModelError
from hybridtrader.ml.models import FitSettings, FoldData, FoldTask, run_folds
from hybridtrader.tasks import task_seed

RNG = np.random.default_rng(3)
X = RNG.standard_normal((600, 4))
Y = ((X[:, 0] + RNG.standard_normal(600)) > 0).astype(np.int32)
NAMES = ["a", "b", "c", "d"]


def tasks(params: dict) -> dict[str, FoldTask]:
    s = FitSettings("lightgbm", {"feature_fraction": 0.5, **params}, 30, 30, 0.1, 1, seed=0)
    rows = np.arange(600)
    return {
        f"fold={f}": FoldTask(f, 0, s, NAMES, rows[: 300 + 100 * f], rows[400:500], rows[500:])
        for f in (0, 1)
    }


def test_folds_use_the_shared_data_and_their_task_seed() -> None:
    out = run_folds(tasks({}), FoldData(X, Y), ComputeConfig(), seed=5)
    for f, r in enumerate(out):
        fit = np.arange(300 + 100 * f)
        params = {"objective": "binary", "learning_rate": 0.1, "num_threads": 1, "deterministic": True,
                  "force_col_wise": True, "verbosity": -1, "feature_fraction": 0.5,
                  "seed": task_seed(5, f"fold={f}")}  # fmt: skip
        train = lgb.Dataset(X[fit], label=Y[fit], feature_name=NAMES)
        valid = lgb.Dataset(X[400:500], label=Y[400:500], reference=train)
        booster = lgb.train(
            params, train, 30, valid_sets=[valid], callbacks=[lgb.early_stopping(30, verbose=False)]
        )
        expected = booster.predict(X[500:], num_iteration=booster.best_iteration)
        np.testing.assert_array_equal(r.prob, expected)
    other = run_folds(tasks({}), FoldData(X, Y), ComputeConfig(), seed=6)
    # the seed is used: another sweep seed gives other models
    assert any(not np.array_equal(a.prob, b.prob) for a, b in zip(out, other, strict=True))


def test_a_failing_fold_is_a_model_error() -> None:
    with pytest.raises(
        ModelError, match=r"^fold task fold=0 failed \(2 attempts\): LightGBMError: .*num_leaves"
    ):
        run_folds(tasks({"num_leaves": -3}), FoldData(X, Y), ComputeConfig(), seed=5)
