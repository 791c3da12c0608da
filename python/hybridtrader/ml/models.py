"""Gradient-boosted classifiers (LightGBM by default, XGBoost as the optional extra) and the fold task.

A fold is an independent task with serialisable inputs (numpy arrays, plain parameters) and outputs, so
the fold loop runs in this process or on a local process pool alike (DESIGN.md, "Scale-out"). Early
stopping watches an inner validation part cut from the training fold only (validation.inner_split).
Thread counts are bounded: each task gets `n_threads`, and the pool divides the cores among its workers.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from hybridtrader.errors import DataError, ModelError

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
class FoldTask:
    fold: int
    trial: int
    settings: FitSettings
    feature_names: list[str]
    x_fit: np.ndarray
    y_fit: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray


@dataclass(frozen=True)
class FoldResult:
    fold: int
    trial: int
    prob: np.ndarray
    best_iteration: int
    fit_seconds: float
    predict_seconds: float
    importance: np.ndarray = field(repr=False)


def machine_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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


def fit(
    settings: FitSettings,
    names: list[str],
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
) -> Fitted:
    if len(np.unique(y_fit)) < 2:
        raise DataError("fit: the training labels are all one class; nothing to learn")
    trainer = _lightgbm if settings.model_type == "lightgbm" else _xgboost
    return trainer(settings, names, x_fit, y_fit, x_valid, y_valid)


def predict(fitted: Fitted, x: np.ndarray, names: list[str]) -> np.ndarray:
    model = fitted.model
    if type(model).__module__.startswith("lightgbm"):
        return np.asarray(model.predict(x, num_iteration=fitted.best_iteration), dtype=float)
    xgb = import_xgboost()
    return np.asarray(model.predict(xgb.DMatrix(x, feature_names=names)), dtype=float)


def run_fold(task: FoldTask) -> FoldResult:
    if len(np.unique(task.y_fit)) < 2:
        # Nothing to learn from one class: the fold predicts its training base rate for every sample.
        base = float(task.y_fit.mean()) if len(task.y_fit) else 0.0
        zeros = np.zeros(len(task.feature_names))
        return FoldResult(task.fold, task.trial, np.full(len(task.x_test), base), 0, 0.0, 0.0, zeros)
    fitted = fit(task.settings, task.feature_names, task.x_fit, task.y_fit, task.x_valid, task.y_valid)
    start = time.perf_counter()
    prob = predict(fitted, task.x_test, task.feature_names)
    return FoldResult(
        task.fold,
        task.trial,
        prob,
        fitted.best_iteration,
        fitted.fit_seconds,
        time.perf_counter() - start,
        fitted.importance,
    )


def run_tasks(
    tasks: Sequence[FoldTask], mode: Literal["sequential", "process"], workers: int
) -> list[FoldResult]:
    """Run fold tasks in order (sequential) or on a local process pool; results keep the task order."""
    if mode == "sequential" or workers <= 1 or len(tasks) <= 1:
        return [run_fold(t) for t in tasks]
    # spawn, not fork: forking a process whose OpenMP runtime (LightGBM) is initialised can deadlock.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
        return list(pool.map(run_fold, tasks))
