"""Training folds (MLPipeline) as tasks on a real local Ray cluster give exactly the sequential result."""

from __future__ import annotations

from pathlib import Path

import pytest
from hybridtrader.config import config_from_dict
from hybridtrader.market.synth import generate_market
from hybridtrader.ml.pipeline import MLPipeline


@pytest.mark.usefixtures("ray_cluster")
def test_training_folds_on_ray_equal_sequential(tmp_path: Path) -> None:
    bars = generate_market(symbols=8, sessions=10, seed=12, ticks=False, mean_reversion=0.5).bars_1m
    ml = {"model": {"n_jobs": 1, "num_boost_round": 40, "early_stopping_rounds": 10}}
    ml["model_registry"] = {"enabled": False}
    out = {}
    for backend in ("sequential", "ray"):
        cfg = {"data_dir": str(tmp_path / backend), "ml_training": ml, "compute": {"backend": backend}}
        out[backend] = MLPipeline(config_from_dict(cfg)).train_strategy_model("intraday_mean_reversion", bars)
    assert len(out["ray"].trials) >= 4  # parameter sets x the thresholds above the base rate
    assert out["ray"].trials == out["sequential"].trials  # exactly: same fold models, same seeds
    assert out["ray"].folds == out["sequential"].folds
