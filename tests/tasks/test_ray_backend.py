"""hybridtrader.tasks on a real local Ray cluster (one per session, `ray_cluster`): the same results as the
sequential backend and the pool, a task whose worker is SIGKILLed is retried, a bad task is reported with
the rest kept, an interrupted sweep resumes from its store, and training folds on Ray equal sequential."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import task_fns
from hybridtrader.config import ComputeConfig
from hybridtrader.tasks import run

SHARED = np.linspace(-1.0, 1.0, 50)
RAY = ComputeConfig(backend="ray")

pytestmark = pytest.mark.usefixtures("ray_cluster")


def fingerprint(results: dict[str, dict]) -> list[tuple[str, str, int, bytes]]:
    return [(k, r["key"], r["seed"], r["value"].tobytes()) for k, r in results.items()]


def inputs(n: int, **extra: object) -> dict[str, dict]:
    return {f"cell={i}": {"n": 3 + i % 3, "scale": 1.0 + i, **extra} for i in range(n)}


def test_ray_equals_sequential_and_pool_byte_for_byte() -> None:
    items = inputs(8)
    seen: list[tuple[int, int]] = []
    on_ray = run(task_fns.noisy_dot, items, RAY, seed=5, shared=SHARED, progress=lambda *a: seen.append(a))
    assert on_ray.ok and list(on_ray.results) == list(items)
    seq = run(task_fns.noisy_dot, items, ComputeConfig(), seed=5, shared=SHARED)
    pool = run(task_fns.noisy_dot, items, ComputeConfig(backend="pool", workers=2), seed=5, shared=SHARED)
    assert fingerprint(on_ray.results) == fingerprint(seq.results) == fingerprint(pool.results)
    assert seen == [(i, 8) for i in range(9)]


def test_a_task_whose_ray_worker_is_killed_is_retried(tmp_path: Path) -> None:
    items = inputs(4)
    items["cell=1"] = {**items["cell=1"], "marker": str(tmp_path / "died")}
    out = run(task_fns.dies_once, items, RAY, seed=1, shared=SHARED)
    assert (tmp_path / "died").exists()  # the first attempt really killed its worker
    assert out.ok, out.failures
    ref = run(task_fns.noisy_dot, items, seed=1, shared=SHARED)
    assert fingerprint(out.results) == fingerprint(ref.results)


def test_a_bad_task_on_ray_is_retried_once_then_reported_with_the_rest_kept(tmp_path: Path) -> None:
    items = inputs(5, attempts=str(tmp_path / "attempts"))
    items["cell=2"] = {**items["cell=2"], "bad": True}
    out = run(task_fns.raises_on_bad, items, RAY, seed=2, shared=SHARED)
    assert list(out.failures) == ["cell=2"]
    assert out.failures["cell=2"].error == "ValueError: bad input 5 for cell=2"
    assert (tmp_path / "attempts").read_text().splitlines() == ["cell=2", "cell=2"]
    good = {k: v for k, v in items.items() if k != "cell=2"}
    assert fingerprint(out.results) == fingerprint(
        run(task_fns.noisy_dot, good, seed=2, shared=SHARED).results
    )


def test_a_worker_that_always_dies_on_ray_is_reported() -> None:
    items = inputs(3)
    items["cell=0"] = {**items["cell=0"], "die": True}
    out = run(task_fns.dies_always, items, RAY, seed=1, shared=SHARED)
    assert list(out.failures) == ["cell=0"] and "worker process died" in out.failures["cell=0"].error
    assert list(out.results) == ["cell=1", "cell=2"]


def test_ray_resumes_a_sweep_from_its_store(tmp_path: Path) -> None:
    log = tmp_path / "log"
    items = inputs(6, log=str(log))
    first = {k: items[k] for k in list(items)[:4]}  # a sweep stopped after 4 of its 6 cells
    run(task_fns.logged, first, seed=3, shared=SHARED, store=tmp_path / "store")
    out = run(task_fns.logged, items, RAY, seed=3, shared=SHARED, store=tmp_path / "store")
    assert out.ok and out.resumed == 4
    assert sorted(log.read_text().splitlines()[4:]) == ["cell=4", "cell=5"]
    assert fingerprint(out.results) == fingerprint(
        run(task_fns.noisy_dot, items, seed=3, shared=SHARED).results
    )


def test_training_folds_on_ray_equal_sequential(tmp_path: Path) -> None:
    from hybridtrader.config import config_from_dict
    from hybridtrader.market.synth import generate_market
    from hybridtrader.ml.pipeline import MLPipeline

    bars = generate_market(symbols=8, sessions=10, seed=12, ticks=False, mean_reversion=0.5).bars_1m
    ml = {"model": {"n_jobs": 1, "num_boost_round": 40, "early_stopping_rounds": 10}}
    ml["model_registry"] = {"enabled": False}
    out = {}
    for backend in ("sequential", "ray"):
        cfg = {"data_dir": str(tmp_path / backend), "ml_training": ml, "compute": {"backend": backend}}
        out[backend] = MLPipeline(config_from_dict(cfg)).train_strategy_model("intraday_mean_reversion", bars)
    assert len(out["ray"]["trials"]) == 6
    assert out["ray"]["trials"] == out["sequential"]["trials"]  # exactly: same fold models, same seeds
    assert out["ray"]["folds"] == out["sequential"]["folds"]
