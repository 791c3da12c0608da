"""Gradient-boosted classifiers (LightGBM by default, XGBoost as the optional extra) and the fold task.

A fold is an independent task for `hybridtrader.tasks.run`: serialisable inputs (sample indices, plain
parameters) and outputs, with the feature matrix and labels as the run's shared data (they travel once,
not once per fold), so the fold loop runs in this process, on a process pool or on Ray alike (DESIGN.md,
"Scale-out"). Each fold's model seed is its task seed. Early stopping watches an inner validation part cut
from the training fold only (validation.inner_split). Thread counts are bounded: each task gets
`n_threads`, and the caller divides the cores among the workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hybridtrader._core import lightgbm_probabilities
from hybridtrader.errors import DataError, ModelError
from hybridtrader.tasks import Progress, TaskContext, machine_threads, run

if TYPE_CHECKING:
    from hybridtrader.config import ComputeConfig

ModelType = Literal["lightgbm", "xgboost"]


@dataclass(frozen=True)
class FitSettings:
    model_type: ModelType
    params: dict[str, float | int]  # one hyper-parameter set of the grid
    num_boost_round: int
    early_stopping_rounds: int
    learning_rate: float
    n_threads: int
    seed: int


@dataclass(frozen=True)
class Fitted:
    model: Any  # lightgbm.Booster or xgboost.Booster
    best_iteration: int
    fit_seconds: float  # time inside the library's own training call
    importance: np.ndarray  # total gain per feature


@dataclass(frozen=True)
class FoldData:
    """What every fold of a training shares: the feature matrix (samples x features) and the labels."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class FoldTask:
    fold: int
    trial: int
    settings: FitSettings
    feature_names: list[str]
    fit_rows: np.ndarray  # indices into FoldData: training part
    valid_rows: np.ndarray  # early-stopping part (cut from the training fold)
    test_rows: np.ndarray  # out-of-sample part


@dataclass(frozen=True)
class FoldResult:
    fold: int
    trial: int
    prob: np.ndarray
    best_iteration: int
    fit_seconds: float
    predict_seconds: float
    importance: np.ndarray = field(repr=False)


def _lightgbm(
    s: FitSettings, names: list[str], xf: np.ndarray, yf: np.ndarray, xv: np.ndarray, yv: np.ndarray
) -> Fitted:
    import lightgbm as lgb

    params: dict[str, Any] = {
        "objective": "binary",
        "learning_rate": s.learning_rate,
        "num_threads": s.n_threads,
        "seed": s.seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
        **s.params,
    }
    train = lgb.Dataset(xf, label=yf, feature_name=names, free_raw_data=True)
    valid = lgb.Dataset(xv, label=yv, reference=train)
    start = time.perf_counter()
    booster = lgb.train(
        params,
        train,
        num_boost_round=s.num_boost_round,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(s.early_stopping_rounds, verbose=False)],
    )
    seconds = time.perf_counter() - start
    best = booster.best_iteration or booster.current_iteration()
    gain = booster.feature_importance(importance_type="gain", iteration=best)
    return Fitted(booster, best, seconds, np.asarray(gain, dtype=float))


_XGB_NAMES = {
    "num_leaves": "max_leaves",
    "min_data_in_leaf": "min_child_weight",
    "feature_fraction": "colsample_bytree",
}


def import_xgboost() -> Any:
    """The xgboost module, or a ModelError saying how to install the optional extra."""
    try:
        import xgboost
    except ImportError as e:
        raise ModelError(
            f"model_type xgboost needs the xgboost package ({e}); install it with "
            "pip install 'hybridtrader[xgboost]' or set model_type: lightgbm"
        ) from None
    return xgboost


def _xgboost(
    s: FitSettings, names: list[str], xf: np.ndarray, yf: np.ndarray, xv: np.ndarray, yv: np.ndarray
) -> Fitted:
    xgb = import_xgboost()
    params: dict[str, Any] = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "eta": s.learning_rate,
        "nthread": s.n_threads,
        "seed": s.seed,
        "tree_method": "hist",
        "grow_policy": "lossguide",
        "max_depth": 0,
        **{_XGB_NAMES.get(k, k): v for k, v in s.params.items()},
    }
    train = xgb.DMatrix(xf, label=yf, feature_names=names)
    valid = xgb.DMatrix(xv, label=yv, feature_names=names)
    start = time.perf_counter()
    booster = xgb.train(
        params,
        train,
        num_boost_round=s.num_boost_round,
        evals=[(valid, "valid")],
        early_stopping_rounds=s.early_stopping_rounds,
        verbose_eval=False,
    )
    seconds = time.perf_counter() - start
    best = int(booster.best_iteration) + 1
    booster = booster[:best]  # keep the early-stopped trees only: every later predict uses them all
    scores = booster.get_score(importance_type="total_gain")
    return Fitted(booster, best, seconds, np.array([float(scores.get(n, 0.0)) for n in names]))


def one_class(y: np.ndarray) -> bool:
    """True when the labels `y` hold fewer than two classes (a min and max, not a sort: every fold asks)."""
    return len(y) == 0 or bool(y.min() == y.max())


def fit(
    settings: FitSettings,
    names: list[str],
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
) -> Fitted:
    if one_class(y_fit):
        raise DataError("fit: the training labels are all one class; nothing to learn")
    trainer = _lightgbm if settings.model_type == "lightgbm" else _xgboost
    return trainer(settings, names, x_fit, y_fit, x_valid, y_valid)


def predict(fitted: Fitted, x: np.ndarray, names: list[str], n_threads: int = 0) -> np.ndarray:
    """Probabilities of `x`'s rows; `n_threads` > 0 bounds LightGBM's threads as the fit's were bounded
    (0: the library's default, every core)."""
    model = fitted.model
    if type(model).__module__.startswith("lightgbm"):
        threads = {"num_threads": n_threads} if n_threads > 0 else {}
        return np.asarray(model.predict(x, num_iteration=fitted.best_iteration, **threads), dtype=float)
    xgb = import_xgboost()
    return np.asarray(model.predict(xgb.DMatrix(x, feature_names=names)), dtype=float)


def fold_probabilities(fitted: Fitted, x: np.ndarray, names: list[str], n_threads: int) -> np.ndarray:
    """`predict` on a fold's test rows (`n_threads` as there). A LightGBM binary model's trees are walked in
    `hybridtrader._core` from its text model: the same leaf sums in tree order and the same sigmoid, so the
    same probabilities bit for bit, in about a third of LightGBM's CPU time on these short trees. A model
    the reader does not cover (linear trees, random forest, another objective) goes through `predict`."""
    model = fitted.model
    if type(model).__module__.startswith("lightgbm"):
        text = model.model_to_string(num_iteration=fitted.best_iteration)
        rows = np.ascontiguousarray(x, dtype=np.float64)
        threads = n_threads if n_threads > 0 else machine_threads()
        try:
            return lightgbm_probabilities(text, rows, fitted.best_iteration, threads)
        except ValueError:  # not covered: LightGBM's own predictor (which also reports a wrong shape)
            pass
    return predict(fitted, x, names, n_threads)


def run_fold(task: FoldTask, ctx: TaskContext) -> FoldResult:
    """Fit on the task's training rows of `ctx.shared` (a FoldData) and predict its test rows."""
    data: FoldData = ctx.shared
    y_fit = data.y[task.fit_rows]
    x_test = data.x[task.test_rows]
    if one_class(y_fit):
        # Nothing to learn from one class: the fold predicts its training base rate for every sample.
        base = float(y_fit.mean()) if len(y_fit) else 0.0
        zeros = np.zeros(len(task.feature_names))
        return FoldResult(task.fold, task.trial, np.full(len(x_test), base), 0, 0.0, 0.0, zeros)
    fitted = fit(
        replace(task.settings, seed=ctx.seed),
        task.feature_names,
        data.x[task.fit_rows],
        y_fit,
        data.x[task.valid_rows],
        data.y[task.valid_rows],
    )
    start = time.perf_counter()
    prob = fold_probabilities(fitted, x_test, task.feature_names, task.settings.n_threads)
    return FoldResult(
        task.fold,
        task.trial,
        prob,
        fitted.best_iteration,
        fitted.fit_seconds,
        time.perf_counter() - start,
        fitted.importance,
    )


def run_folds(
    tasks: dict[str, FoldTask],
    data: FoldData,
    compute: ComputeConfig,
    seed: int,
    progress: Progress | None = None,
) -> list[FoldResult]:
    """Every fold task on `compute` (`hybridtrader.tasks.run`, `data` shared), results in task order; a fold
    that fails twice is a ModelError naming it (a validation with a hole in it cannot be scored)."""
    outcome = run(run_fold, tasks, compute, seed=seed, shared=data, progress=progress)
    if not outcome.ok:
        key, failure = next(iter(outcome.failures.items()))
        raise ModelError(f"fold task {key} failed ({failure.attempts} attempts): {failure.error}")
    return list(outcome.results.values())
