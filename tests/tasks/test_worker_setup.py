"""How workers are set up and torn down: one core's share of Polars threads each, on the pool, on a Ray
cluster that was already running and on one `run` starts; a pool worker's quick exit keeps what its tasks
printed and the exit handlers they left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hybridtrader.config import ComputeConfig
from hybridtrader.tasks import POLARS_THREADS, machine_threads, run
from task_fns import noisy_dot, polars_threads

HERE = Path(__file__).parent
PYTHONPATH = str(HERE)  # for task_fns; hybridtrader is the installed package (the source tree has no _core)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    env.pop(POLARS_THREADS, None)
    # Block-buffered stdout, as a pipe normally has: with PYTHONUNBUFFERED (set in some shells and CI) print's
    # text and its newline are two writes, and two workers' lines can interleave on the shared pipe.
    env.pop("PYTHONUNBUFFERED", None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_pool_workers_get_their_share_of_polars_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POLARS_THREADS, raising=False)
    out = run(polars_threads, {"a": 0, "b": 1}, ComputeConfig(backend="pool", workers=2))
    assert set(out.results.values()) == {max(1, machine_threads() // 2)}


@pytest.mark.usefixtures("ray_cluster")
def test_ray_tasks_get_one_polars_thread_on_a_running_cluster() -> None:
    out = run(polars_threads, {"a": 0, "b": 1}, ComputeConfig(backend="ray"))
    assert set(out.results.values()) == {1}


def test_ray_tasks_get_one_polars_thread_on_the_cluster_run_starts() -> None:
    code = (
        "from hybridtrader.config import ComputeConfig\n"
        "from hybridtrader.tasks import run\n"
        "from task_fns import polars_threads\n"
        "out = run(polars_threads, {'a': 0, 'b': 1}, ComputeConfig(backend='ray', workers=2))\n"
        "print(sorted(set(out.results.values())), out.failures)\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "[1] {}"


def test_a_pool_workers_quick_exit_keeps_its_output_and_exit_handlers(tmp_path: Path) -> None:
    keys = [f"k{i}" for i in range(4)]
    inputs = {k: {"exit_file": str(tmp_path / f"{k}.exit")} for k in keys}
    code = (
        "from hybridtrader.config import ComputeConfig\n"
        "from hybridtrader.tasks import run\n"
        "from task_fns import prints_and_leaves_atexit\n"
        f"out = run(prints_and_leaves_atexit, {inputs!r}, ComputeConfig(backend='pool', workers=2))\n"
        "assert out.ok, out.failures\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(line for line in done.stdout.splitlines() if line.startswith("task ")) == [
        f"task {k} printed" for k in keys
    ]
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {f"{k}.exit": k for k in keys}


def test_the_pools_shared_data_file_is_removed_after_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # tempfile reads it on first use of gettempdir
    monkeypatch.setattr("tempfile.tempdir", None)
    shared = np.arange(3.0)
    inputs = {k: {"n": 2, "scale": 1.0} for k in ("a", "b")}  # one task alone would run here, not on the pool
    out = run(noisy_dot, inputs, ComputeConfig(backend="pool", workers=2), shared=shared)
    seq = run(noisy_dot, inputs, shared=shared)
    assert [r["value"].tobytes() for r in out.results.values()] == [
        r["value"].tobytes() for r in seq.results.values()
    ]
    assert list(tmp_path.iterdir()) == []
