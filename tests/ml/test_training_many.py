"""MLPipeline.train_strategy_models: several strategies in one call, each one's MLflow registration running in
the background while the next trains. Checked against one `train_strategy_model` call per strategy on a
store of its own: the same results and the same registry contents (runs, versions, aliases, artifacts),
earlier trials on the same bars counted (the next training waits for the registration before it reads the
registry), and a registration that fails in the background raises from the call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hybridtrader.config import config_from_dict
from hybridtrader.market.synth import generate_market
from hybridtrader.ml.pipeline import MLPipeline
from hybridtrader.ml.result import TrainingResult

MR, TREND = "intraday_mean_reversion", "swing_trend_following"
ORDER = [MR, TREND, MR]  # MR twice: its second training counts the first one's trials
TIMED = ("seconds", "overhead_share")  # wall-clock metrics: differ run to run


def config(root: Path, artifacts: str | None = None) -> dict[str, Any]:
    return {
        "data_dir": str(root),
        "ml_training": {
            "model": {"n_jobs": 1, "num_boost_round": 40, "early_stopping_rounds": 10},
            "model_registry": {
                "enabled": True,
                "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                "artifact_location": artifacts or (root / "artifacts").as_uri(),
            },
        },
    }


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return generate_market(symbols=8, sessions=12, seed=5, ticks=False, mean_reversion=0.5, trend=1.0).bars_1m


def untimed(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if not any(t in k for t in TIMED)}


def outcome(r: TrainingResult) -> dict[str, Any]:
    return {
        "promoted": r.promoted,
        "best": r.best,
        "metrics": untimed(r.metrics),
        "trials": r.trials,
        "folds": r.folds,
        "importance": r.feature_importance,
        "model": r.model.model_to_string() if r.model is not None else None,
        "rule": (r.rule.offered, r.rule.metrics, r.rule.version) if r.rule else None,
        "registered": (r.model_id, r.version, r.alias),
    }


def registry_contents(p: MLPipeline) -> list[tuple[Any, ...]]:
    """Every run of every strategy's experiment (oldest first) and every registered version with its alias."""
    client = p.registry.client
    out: list[tuple[Any, ...]] = []
    for strategy in (MR, TREND):
        runs = client.search_runs(
            [p.registry.experiment_id(strategy)], order_by=["attributes.start_time ASC"]
        )
        for run in runs:
            # run ids differ between stores: the rule-only run's link to its model run is checked apart
            tags = {
                k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.") and k != "model_run_id"
            }
            files = sorted(a.path for a in client.list_artifacts(run.info.run_id))
            out.append((strategy, run.info.status, run.data.params, tags, untimed(run.data.metrics), files))
    for mv in client.search_model_versions(max_results=1000):
        out.append((mv.name, mv.version, sorted(mv.aliases), mv.tags))
    return sorted(out, key=repr)


def test_many_in_one_call_equal_one_call_each(tmp_path: Path, bars: pl.DataFrame) -> None:
    together = MLPipeline(config_from_dict(config(tmp_path / "together")))
    many = together.train_strategy_models(ORDER, bars)
    apart = MLPipeline(config_from_dict(config(tmp_path / "apart")))
    one_by_one = [apart.train_strategy_model(s, bars) for s in ORDER]
    assert [outcome(r) for r in many] == [outcome(r) for r in one_by_one]
    assert registry_contents(together) == registry_contents(apart)
    first, again = many[0], many[2]
    assert again.metrics["n_prior_trials"] == first.metrics["n_trials"] > 0
    assert all(r.run_id and r.version for r in many)  # every registration finished before the return
    assert len({r.run_id for r in many}) == len(ORDER)
    client = together.registry.client
    for r in many:
        if r.rule is not None and r.rule.offered:
            source = client.get_model_version(f"{r.strategy}-rule-only", r.rule.version).run_id
            assert client.get_run(source).data.tags["model_run_id"] == r.run_id


def test_a_failed_background_registration_raises(tmp_path: Path, bars: pl.DataFrame) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the artifact store's directory should be")
    p = MLPipeline(config_from_dict(config(tmp_path / "store", artifacts=blocker.as_uri())))
    with pytest.raises(OSError):
        p.train_strategy_models([MR, TREND], bars)
    runs = p.registry.client.search_runs([p.registry.experiment_id(MR)])
    assert [r.info.status for r in runs] == ["FAILED"]  # the model's run is marked, never left running
