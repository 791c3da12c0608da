"""ML benchmarks.

- group "features": our Polars feature computation beside a straightforward pandas/numpy implementation of
  the same features (pandas is present as an MLflow dependency; it is used only by this peer).
  Quick: 100k bars; full (HYBRIDTRADER_BENCH=full): 1M bars (100 symbols x 10,000 bars).
- group "train": training both seed strategies end to end (features, labels, purged walk-forward folds,
  backtests, final model, MLflow logging) on 1-minute bars. Quick: 5 symbols x 5 sessions; full: 50 symbols
  x 60 sessions. extra_info reports the time inside LightGBM's own `train` calls and the share outside it
  (orchestration overhead, target under 25% with the permutation control off), and the wall time of each
  stage as the pipeline's progress reports delimit it (features, labels, folds and final model with their
  LightGBM fits inside, registry; "other" is the rest: costs, splits, selection and gates). One call
  trains both (`train_strategy_models`), so the first strategy's registration runs in the background while
  the second trains: the stages' sum can exceed the total. Everything in the timed call that is not inside
  LightGBM's `train` counts as overhead. Steady state, as a process
  training on a schedule sees it: the MLflow store exists and lightgbm is imported before timing (a
  process imports it once, about 0.2-0.3 s, however many trainings follow).
- group "predict": the folds' test probabilities (`ml.models.fold_probabilities`: the LightGBM model's trees
  walked in Rust from its text model, bit-identical) beside LightGBM's own `Booster.predict` on the same
  early-stopped model and rows, both on 2 threads. Quick: 5,000 test rows; full: 20,000 (a fold's size on
  the full training market).
- group "permutation": the permutation control's cost per run (one retraining of every fold on shuffled
  labels, selected and scored like the real one) on the planted market, both strategies.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import time
from collections import defaultdict

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hybridtrader.config import config_from_dict
from hybridtrader.market.synth import generate_market
from hybridtrader.ml.features import compute_features
from hybridtrader.ml.models import Fitted, fold_probabilities
from hybridtrader.ml.pipeline import MLPipeline
from hybridtrader.ml.result import TrainingResult

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
FEATURES = [
    "zscore",
    "rsi",
    "atr",
    "adx",
    "ema_slope",
    "trend_strength",
    "volume_zscore",
    "spread",
    "ret_5",
    "rv",
]


def market(n_symbols: int, n_sessions: int, knobs: dict[str, float], seed: int = 0) -> pl.DataFrame:
    return generate_market(symbols=n_symbols, sessions=n_sessions, seed=seed, ticks=False, **knobs).bars_1m


def random_bars(n_symbols: int, per_symbol: int) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    n = n_symbols * per_symbol
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, (n_symbols, per_symbol)), axis=1)).ravel()
    wiggle = np.abs(rng.normal(0, 5e-4, (2, n)))
    ts = np.tile(np.arange(per_symbol, dtype=np.int64) * 60_000_000_000 + 1_704_205_800 * 10**9, n_symbols)
    return pl.DataFrame(
        {
            "symbol": np.repeat([f"S{i:03d}" for i in range(n_symbols)], per_symbol),
            "ts": pl.Series(ts).cast(pl.Datetime("ns", "UTC")),
            "open": close,
            "high": close * (1 + wiggle[0]),
            "low": close * (1 - wiggle[1]),
            "close": close,
            "volume": rng.lognormal(7, 0.5, n).round(),
        }
    )


# ------------------------------------------------------------------- peer: pandas/numpy, per symbol
def _wilder(x: pd.Series, n: int) -> pd.Series:
    return x.ewm(alpha=1 / n, adjust=False).mean()


def pandas_features(df: pd.DataFrame) -> pd.DataFrame:
    out = []
    for _, g in df.groupby("symbol", sort=True):
        c, h, lo, v = g["close"], g["high"], g["low"], g["volume"].astype(float)
        f = pd.DataFrame({"symbol": g["symbol"], "ts": g["ts"]})
        f["zscore"] = (c - c.rolling(20).mean()) / c.rolling(20).std()
        d = c.diff()
        gain, loss = _wilder(d.clip(lower=0), 14), _wilder((-d).clip(lower=0), 14)
        f["rsi"] = 100 - 100 / (1 + gain / loss)
        pc = c.shift(1)
        tr = np.maximum(h - lo, np.maximum((h - pc).abs(), (lo - pc).abs()))
        atr = _wilder(tr, 14)
        f["atr"] = atr
        up, down = h.diff(), -lo.diff()
        pdm = pd.Series(np.where((up > down) & (up > 0), up, 0.0), index=g.index)
        mdm = pd.Series(np.where((down > up) & (down > 0), down, 0.0), index=g.index)
        pdi, mdi = 100 * _wilder(pdm, 14) / atr, 100 * _wilder(mdm, 14) / atr
        f["adx"] = _wilder(100 * (pdi - mdi).abs() / (pdi + mdi), 14)
        e20 = c.ewm(span=20, adjust=False).mean()
        f["ema_slope"] = 1e4 * (e20 / e20.shift(1) - 1)
        f["trend_strength"] = (
            c.ewm(span=10, adjust=False).mean() - c.ewm(span=30, adjust=False).mean()
        ) / atr
        f["volume_zscore"] = (v - v.rolling(20).mean()) / v.rolling(20).std()
        hl = np.log(h / lo) ** 2
        beta = hl + hl.shift(1)
        gamma = np.log(np.maximum(h, h.shift(1)) / np.minimum(lo, lo.shift(1))) ** 2
        k = 3 - 2 * np.sqrt(2)
        alpha = (np.sqrt(2 * beta) - np.sqrt(beta)) / k - np.sqrt(gamma / k)
        f["spread"] = 1e4 * (2 * (np.exp(alpha) - 1) / (1 + np.exp(alpha))).clip(lower=0).rolling(20).mean()
        lr = np.log(c / c.shift(1))
        f["ret_5"] = np.log(c / c.shift(5))
        f["rv"] = lr.rolling(20).std()
        out.append(f)
    return pd.concat(out)


N_SYMBOLS, PER_SYMBOL = (100, 10_000) if FULL else (20, 5_000)


@pytest.fixture(scope="module")
def feature_bars() -> pl.DataFrame:
    return random_bars(N_SYMBOLS, PER_SYMBOL)


@pytest.mark.benchmark(group="features")
def test_features_polars(benchmark, feature_bars: pl.DataFrame) -> None:
    out = benchmark(compute_features, feature_bars, FEATURES)
    assert out.height == feature_bars.height
    benchmark.extra_info["bars"] = feature_bars.height


@pytest.mark.benchmark(group="features")
def test_features_pandas_peer(benchmark, feature_bars: pl.DataFrame) -> None:
    df = feature_bars.to_pandas()
    out = benchmark(pandas_features, df)
    assert len(out) == feature_bars.height
    benchmark.extra_info["bars"] = feature_bars.height


# ------------------------------------------------------------------------------------------ training
MARKETS = {"noise": {}, "planted": {"mean_reversion": 0.5, "trend": 1.0}}


class StageClock:
    """A progress callback for `train_strategy_model` that adds up each stage's wall time: from its first
    report to its last, per training."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._open: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        start = self._open.setdefault(stage, now)
        if done >= total:
            self.seconds[stage] += now - start
            del self._open[stage]


@pytest.mark.benchmark(group="train")
@pytest.mark.parametrize("kind", list(MARKETS))
def test_train_both_strategies_overhead(benchmark, kind: str) -> None:
    """noise: nothing to learn, early stopping ends the fits after a few rounds (the worst case for the
    overhead share); planted: both strategies have a signal to learn."""
    n_symbols, n_sessions = (50, 60) if FULL else (5, 5)
    bars = market(n_symbols, n_sessions, MARKETS[kind])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict({"data_dir": tmp, "ml_training": {"model": {"n_jobs": 2}}})
        pipe = MLPipeline(cfg)
        for name in cfg.strategies:
            pipe.registry.experiment_id(name)  # the store exists before timing
        importlib.import_module("lightgbm")  # imported once per process, not per training
        results: list[TrainingResult] = []
        clock = StageClock()

        def train() -> None:
            results.clear()
            results.extend(pipe.train_strategy_models(list(cfg.strategies), bars, clock))

        start = time.perf_counter()
        benchmark.pedantic(train, rounds=1, iterations=1)
        total = time.perf_counter() - start
    fit = sum(r.metrics["fit_seconds"] for r in results)
    predict = sum(r.metrics["predict_seconds"] for r in results)
    stages = {k: round(v, 2) for k, v in clock.seconds.items()}
    stages["other"] = round(total - sum(clock.seconds.values()), 2)
    info = benchmark.extra_info
    info.update(
        bars=bars.height,
        total_s=round(total, 2),
        lightgbm_fit_s=round(fit, 2),
        outside_fit_s=round(total - fit, 2),
        overhead_share=round(1 - fit / total, 3),  # target: under 0.25
        predict_s=round(predict, 2),  # the folds' test probabilities: part of outside_fit_s
        stage_s=stages,  # wall time per stage; folds and final model hold the LightGBM fits
        samples={r.strategy: int(r.metrics["n_samples"]) for r in results},
        promoted={r.strategy: r.promoted for r in results},
        rule_offered={r.strategy: bool(r.rule and r.rule.offered) for r in results},
    )
    print(
        f"\ntrain both strategies on {bars.height:,} bars ({kind}): total {total:.2f} s, LightGBM fit "
        f"{fit:.2f} s, outside fit {total - fit:.2f} s = {1 - fit / total:.1%} of the total; {info}"
    )


# ------------------------------------------------------------------------------------------- predict
@pytest.fixture(scope="module")
def fold_model() -> tuple[Fitted, np.ndarray]:
    """An early-stopped model of the fold loop's first parameter set on 7 features, and test rows."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    n_test = 20_000 if FULL else 5_000
    x = rng.normal(size=(60_000 + n_test, 7))
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.normal(0, 1.5, len(x)) > 0).astype(int)
    params = {"objective": "binary", "verbosity": -1, "num_leaves": 15, "min_data_in_leaf": 200}
    booster = lgb.train(
        {**params, "learning_rate": 0.05, "num_threads": 2},
        lgb.Dataset(x[:50_000], y[:50_000]),
        300,
        valid_sets=[lgb.Dataset(x[50_000:60_000], y[50_000:60_000])],
        callbacks=[lgb.early_stopping(30, verbose=False)],
    )
    return Fitted(booster, booster.best_iteration, 0.0, np.zeros(7)), x[60_000:]


@pytest.mark.benchmark(group="predict")
def test_fold_probabilities(benchmark, fold_model: tuple[Fitted, np.ndarray]) -> None:
    fitted, rows = fold_model
    out = benchmark(fold_probabilities, fitted, rows, [f"f{i}" for i in range(7)], 2)
    want = fitted.model.predict(rows, num_iteration=fitted.best_iteration, num_threads=2)
    assert np.array_equal(out, want)
    benchmark.extra_info.update(rows=len(rows), trees=fitted.best_iteration)


@pytest.mark.benchmark(group="predict")
def test_lightgbm_predict_peer(benchmark, fold_model: tuple[Fitted, np.ndarray]) -> None:
    fitted, rows = fold_model
    out = benchmark(fitted.model.predict, rows, num_iteration=fitted.best_iteration, num_threads=2)
    assert len(out) == len(rows)
    benchmark.extra_info.update(rows=len(rows), trees=fitted.best_iteration)


@pytest.mark.benchmark(group="permutation")
def test_permutation_control_cost_per_run(benchmark) -> None:
    n_symbols, n_sessions = (50, 60) if FULL else (5, 5)
    bars = market(n_symbols, n_sessions, MARKETS["planted"])
    runs = 2
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict(
            {"data_dir": tmp, "ml_training": {"model": {"n_jobs": 2}, "model_registry": {"enabled": False}}}
        )
        pipe = MLPipeline(cfg)
        results: list[TrainingResult] = []

        def train() -> None:
            results.clear()
            results.extend(pipe.train_strategy_model(n, bars, permutation_runs=runs) for n in cfg.strategies)

        benchmark.pedantic(train, rounds=1, iterations=1)
    per_run = {r.strategy: round(r.metrics["permutation_seconds_per_run"], 2) for r in results}
    fold_fit = {r.strategy: round(r.metrics["fit_seconds"], 2) for r in results}
    benchmark.extra_info.update(runs=runs, seconds_per_run=per_run, real_training_fit_s=fold_fit)
    print(f"\npermutation control on {bars.height:,} bars: seconds per run {per_run}; real fit {fold_fit}")
