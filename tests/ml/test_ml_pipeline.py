"""MLPipeline end to end: honesty (noise rejected, a planted rule edge credited to the rule, a planted filter
signal promoted), MLflow registry read back with stock MLflow, trial counting across runs, retraining
triggers, process-pool folds, XGBoost, the CLI. Promotion controls: tests/ml/test_promotion_controls.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import polars as pl
import pytest
import yaml
from hybridtrader.cli import main
from hybridtrader.config import Config, config_from_dict
from hybridtrader.market.synth import generate_market
from hybridtrader.ml.features import compute_features
from hybridtrader.ml.pipeline import MLPipeline
from hybridtrader.ml.registry import tracking_uri
from hybridtrader.ml.result import TrainingResult

MR, TREND = "intraday_mean_reversion", "swing_trend_following"


def settings(data_dir: Path, **ml: object) -> dict:
    base: dict = {
        "model": {"n_jobs": 1, "num_boost_round": 60, "early_stopping_rounds": 15},
        "model_registry": {"enabled": False},
    }
    for k, v in ml.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return {"data_dir": str(data_dir), "ml_training": base}


def pipeline(data_dir: Path, **ml: object) -> MLPipeline:
    return MLPipeline(config_from_dict(settings(data_dir, **ml)))


@pytest.fixture(scope="module")
def noise_bars() -> pl.DataFrame:
    return generate_market(symbols=12, sessions=15, seed=11, ticks=False).bars_1m


@pytest.fixture(scope="module")
def mr_bars() -> pl.DataFrame:
    return generate_market(symbols=12, sessions=15, seed=12, ticks=False, mean_reversion=0.5).bars_1m


@pytest.fixture(scope="module")
def regime_bars() -> pl.DataFrame:
    """A signal only a model can use: fading stretched moves pays in volatile minutes only."""
    return generate_market(symbols=12, sessions=25, seed=1, ticks=False, regime_reversion=0.7).bars_1m


@pytest.fixture(scope="module")
def trend_bars() -> pl.DataFrame:
    return generate_market(symbols=12, sessions=15, seed=13, ticks=False, trend=1.0).bars_1m


# --------------------------------------------------------------------------------------- honesty
@pytest.mark.parametrize("method", ["walk_forward", "purged_kfold"])
def test_noise_market_is_rejected(tmp_path, noise_bars: pl.DataFrame, method: str) -> None:
    p = pipeline(tmp_path, validation_method=method)
    for strategy in (MR, TREND):
        r = p.train_strategy_model(strategy, noise_bars)
        assert not r.promoted, (strategy, r.gates)
        dsr = next(g for g in r.gates if g.name == "deflated_sharpe")
        assert not dsr.passed
        # 2 parameter sets x every threshold above the base rate, all counted
        tried = [t for t in Config().ml_training.backtest.thresholds if t > r.metrics["positive_rate"]]
        assert r.metrics["n_trials"] == 2 * len(tried) == len(r.trials) and len(tried) >= 2


def test_planted_mean_reversion_is_found_and_credited_to_the_rule(tmp_path, mr_bars: pl.DataFrame) -> None:
    r = pipeline(tmp_path).train_strategy_model(MR, mr_bars)
    assert r.costs.startswith("SlippageModel")  # costs from the slippage model by default
    assert not r.market_neutral
    assert r.metrics["rule_sharpe"] > 1.0 and r.metrics["sharpe"] > 1.0  # the edge is found...
    assert not r.promoted and not r.gate("beats_rule").passed  # ...and it is the rule's, not the model's
    assert r.rule is not None and r.rule.offered and all(g.passed for g in r.rule.gates[:4])


def test_planted_filter_signal_is_found_and_promoted(tmp_path, regime_bars: pl.DataFrame) -> None:
    r = pipeline(tmp_path).train_strategy_model(MR, regime_bars)
    assert r.promoted, r.gates
    assert all(g.passed for g in r.gates)
    assert r.metrics["deflated_sharpe"] >= 0.95 and r.metrics["n_trades"] >= 50


def test_planted_trend_is_found(tmp_path, trend_bars: pl.DataFrame) -> None:
    r = pipeline(tmp_path, backtest={"use_slippage_model": False, "cost_bps": 2.0}).train_strategy_model(
        TREND, trend_bars
    )
    assert r.costs == "fixed 2.0 bps per side"
    assert r.market_neutral  # swing P&L is measured against the basket by default
    assert r.metrics["rule_sharpe"] > 1.0 and r.metrics["sharpe"] > 1.0
    assert r.promoted == all(g.passed for g in r.gates)


def test_result_shape_and_fold_details(tmp_path, mr_bars: pl.DataFrame) -> None:
    r = pipeline(tmp_path, validation_method="purged_kfold").train_strategy_model(MR, mr_bars)
    assert isinstance(r, TrainingResult) and r.best is not None
    assert r.best.threshold in Config().ml_training.backtest.thresholds
    assert [g.name for g in r.gates] == [
        "sharpe",
        "max_drawdown",
        "trades",
        "win_rate",
        "deflated_sharpe",
        "auc_lower_bound",
        "beats_rule",
    ]
    assert all({"value", "threshold", "op", "passed"} <= set(g.as_dict()) for g in r.gates)
    assert len(r.folds) == 5 and all(f["n_test"] > 0 for f in r.folds)
    assert r.metrics["n_oos_samples"] == r.metrics["n_samples"]  # k-fold tests every sample once
    assert set(r.feature_importance) == set(Config().strategies[MR].ml_model.features)
    assert r.equity["equity"].len() == r.metrics["n_periods"]
    assert r.metrics["min_track_record_periods"] > 1
    assert len(r.fold_dates) == 5 and all(" .. " in f["test"] for f in r.fold_dates)


def test_process_pool_matches_sequential(tmp_path, mr_bars: pl.DataFrame) -> None:
    seq = pipeline(tmp_path / "a").train_strategy_model(MR, mr_bars)
    pool = {**settings(tmp_path / "b"), "compute": {"backend": "pool", "workers": 2}}
    par = MLPipeline(config_from_dict(pool)).train_strategy_model(MR, mr_bars)
    assert par.metrics["sharpe"] == pytest.approx(seq.metrics["sharpe"])
    assert len(par.trials) == len(seq.trials) >= 4
    for a, b in zip(par.trials, seq.trials, strict=True):
        assert a == pytest.approx(b, rel=1e-12)  # same models; P&L sums may differ in the last bit


def test_xgboost_model(tmp_path, mr_bars: pl.DataFrame) -> None:
    cfg = settings(tmp_path)
    cfg["strategies"] = {MR: {"ml_model": {"model_type": "xgboost", "features": ["zscore", "rsi", "atr"]}}}
    r = MLPipeline(config_from_dict(cfg)).train_strategy_model(MR, mr_bars)
    assert type(r.model).__module__.startswith("xgboost")
    assert r.metrics["sharpe"] > 1.0 and r.promoted == all(g.passed for g in r.gates)


def test_seed_snippet_with_mapping_config_and_per_symbol_frames(tmp_path, mr_bars: pl.DataFrame) -> None:
    ml_pipeline = MLPipeline(settings(tmp_path))  # the parsed YAML mapping, as the seed passes it
    assert ml_pipeline.should_retrain(MR, model_age_days=7)
    historical_data = {str(sym): f.drop("symbol") for (sym,), f in mr_bars.group_by("symbol")}
    results = ml_pipeline.train_strategy_model(MR, historical_data)
    assert isinstance(results["promoted"], bool) and "model_id" in results


def test_bad_requests(tmp_path, mr_bars: pl.DataFrame) -> None:
    p = pipeline(tmp_path)
    with pytest.raises(ValueError, match="not configured"):
        p.train_strategy_model("nope", mr_bars)
    with pytest.raises(ValueError, match="missing columns"):
        p.train_strategy_model(MR, mr_bars.drop("close"))
    short = p.train_strategy_model(
        TREND, mr_bars.filter(pl.col("ts") < pl.col("ts").min() + pl.duration(hours=5))
    )
    assert not short.promoted and short.model_id is None and "labelled samples" in short.reason
    assert [g.passed for g in short.gates] == [False] * 5  # no trades: nothing passes, drawdown neither
    with pytest.raises(ValueError, match="model_age_days"):
        p.should_retrain(MR, model_age_days=-1)
    assert p.should_retrain(MR)  # no registry: no champion to age
    assert not p.should_retrain(MR, model_age_days=6.5)  # weekly schedule
    assert not (tmp_path / "mlflow").exists()  # a disabled registry is never created


# -------------------------------------------------------------------------------------- registry
@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


def registry_config(store: Path, data_dir: Path, **ml: object) -> dict:
    cfg = settings(data_dir, **ml)
    cfg["ml_training"]["model_registry"] = {
        "enabled": True,
        "tracking_uri": f"sqlite:///{store / 'mlflow.db'}",
        "artifact_location": (store / "artifacts").as_uri(),
    }
    return cfg


def test_mlflow_telemetry_is_off_outside_pytest_too() -> None:
    """MLflow decides on telemetry when first imported; our registry module switches it off before that,
    also in a plain process (pytest and CI environments disable it by themselves)."""
    code = (
        "import hybridtrader.ml.registry, mlflow\n"
        "from mlflow.telemetry import get_telemetry_client\n"
        "print(get_telemetry_client())"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"PYTEST_CURRENT_TEST", "CI", "DO_NOT_TRACK"}}
    env.pop("MLFLOW_DISABLE_TELEMETRY", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


def test_default_store_is_under_data_dir(tmp_path) -> None:
    cfg = config_from_dict({"data_dir": str(tmp_path)})
    assert tracking_uri(cfg) == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_registry_champion_challenger_and_trial_counting(
    tmp_path, store: Path, regime_bars: pl.DataFrame, noise_bars: pl.DataFrame
) -> None:
    cfg = config_from_dict(registry_config(store, tmp_path))
    p = MLPipeline(cfg)
    assert p.should_retrain(MR)  # no champion yet
    first = p.train_strategy_model(MR, regime_bars)
    assert (
        first.promoted and first.alias == "champion" and first.model_id == f"{MR}/{first.version}"
    )
    assert not p.should_retrain(MR)  # a fresh champion
    assert p.should_retrain(MR, model_age_days=7)  # weekly schedule

    # Stock MLflow reads the champion back and predicts what our booster predicts. (Imported here, after
    # hybridtrader.ml.registry switched telemetry off: MLflow decides that when it is first imported.)
    import mlflow

    mlflow.set_tracking_uri(p.registry.uri)
    mlflow.set_registry_uri(p.registry.uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{MR}@champion")
    names = first.features
    feats = compute_features(regime_bars, names).drop_nulls(names).head(500).select(names)
    ours = first.model.predict(feats.to_numpy())
    theirs = np.asarray(loaded.predict(feats.to_pandas()))
    np.testing.assert_allclose(theirs, ours, rtol=1e-9)
    assert [c.name for c in loaded.metadata.get_input_schema().inputs] == names

    client = p.registry.client
    run = client.get_run(first.run_id)
    assert run.data.params["validation_method"] == "walk_forward"
    assert {"data_start", "data_end", "feature_hash", "code_version", "data_hash"} <= set(run.data.tags)
    assert run.data.tags["feature_hash"] == first.feature_hash
    assert run.data.metrics["deflated_sharpe"] == pytest.approx(first.metrics["deflated_sharpe"])
    fold_sharpes = client.get_metric_history(first.run_id, "fold_sharpe")
    assert sorted(m.step for m in fold_sharpes) == list(range(len(first.folds)))
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"model", "gates.json", "feature_importance.svg", "oos_equity.svg", "trials.json"} <= artifacts

    # The same bars again: the earlier trials count (re-running on the same data is a trial too).
    again = p.train_strategy_model(MR, regime_bars)
    n = first.metrics["n_trials"]
    assert again.metrics["n_trials"] == 2 * n and again.metrics["n_prior_trials"] == n
    assert again.metrics["expected_max_sharpe"] > first.metrics["expected_max_sharpe"]
    # Other data (noise): no earlier trials on it; rejected, the new version is only a challenger.
    second = p.train_strategy_model(MR, noise_bars)
    assert second.metrics["n_prior_trials"] == 0
    assert not second.promoted and second.alias == "challenger"
    champion = again.version if again.promoted else first.version
    assert p.registry.alias_version(MR, "champion") == champion
    assert p.registry.alias_version(MR, "challenger") == second.version not in (first.version, champion)

    # A drift alert triggers retraining even for a fresh champion.
    ref = compute_features(regime_bars, names)
    cur = ref.with_columns(pl.col("zscore") + 3.0)
    p.alert_manager.check_model_drift(ref.drop_nulls(), cur.drop_nulls(), model=MR)
    assert p.should_retrain(MR)


def test_cli_train_writes_report(
    tmp_path, store: Path, trend_bars: pl.DataFrame, capsys, monkeypatch
) -> None:
    # Another strategy than the registry test's: earlier trials of a strategy on these dates would count.
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps tables to the terminal width
    data = tmp_path / "bars.parquet"
    trend_bars.write_parquet(data)
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(registry_config(store, tmp_path / "data")))
    out = tmp_path / "report"
    code = main(
        ["train", "--config", str(cfg_file), "--data", str(data), "--strategy", TREND, "--report", str(out)]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "deflated_sharpe" in text and "beats_rule" in text
    html = (out / "index.html").read_text()
    assert "deflated_sharpe" in html and f"{TREND}_equity.svg" in html
    chart = ElementTree.fromstring((out / f"{TREND}_equity.svg").read_bytes())  # well-formed SVG
    assert chart.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(chart.find("{http://www.w3.org/2000/svg}polyline").get("points").split()) > 1
    assert main(["train", "--config", str(cfg_file), "--data", str(tmp_path / "missing.parquet")]) == 2


def test_cli_train_on_a_synthetic_market(tmp_path, store: Path, capsys, monkeypatch) -> None:
    """No --data: the command synthesises a market (here with a planted trend) and trains on it."""
    monkeypatch.setenv("COLUMNS", "200")
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(registry_config(store, tmp_path / "data")))
    # Other dates than the earlier tests' markets: their trials on the same dates would count here.
    args = ["train", "--config", str(cfg_file), "--strategy", TREND, "--symbols", "12", "--sessions", "15"]
    args += ["--seed", "19", "--start", "2023-03-01"]
    assert main([*args, "--trend", "1.0", "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "swing_trend_following" in out and "intraday_mean_reversion" not in out
    assert (tmp_path / "r" / "index.html").exists()
    assert main([*args, "--trend", "-1"]) == 2  # synth rejects the knob: one error line
