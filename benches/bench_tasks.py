"""Task-runner benchmarks (hybridtrader.tasks) on this machine's cores, 2 workers.

- group "task-overhead": tiny tasks (the task returns its input) through `tasks.run` on each backend,
  beside the bare library doing the same (`ProcessPoolExecutor.map`, `ray.get([f.remote(i)])`).
  extra_info: `per_task_us`, the marginal cost of one more task ((t(N) - t(n0)) / (N - n0)), and
  `startup_s` = t(n0) (pool: spawning the workers; Ray: the cluster is started once before timing, as a
  running cluster is the steady state). Quick: N = 200; full: N = 20,000 (pool,
  sequential) and 2,000 (Ray).
- group "speedup": 16 CPU-bound tasks (full: about 2 s each on an idle core; quick: 4 small ones)
  sequential vs pool vs Ray, each the fastest of 3 rounds (full; quick: 1) after the same warm-up of this
  process; extra_info `speedup` = sequential time / this backend's time (target >= 1.8 on 2 cores),
  `spread` of the rounds, `task_s` the mean task time measured sequentially, and where the rest of the
  time went (`overhead`: worker start, first-call extra, idle between tasks, imbalance at the end,
  result collection), from timestamps the tasks take in the workers.

The CPU-bound task is pluggable: WORKLOADS maps a name to a builder of (fn, inputs, shared data) from
(number of tasks, full mode), chosen by $HYBRIDTRADER_BENCH_TASK: "backtest" (default; one cell of a
`hybridtrader sweep`, the engine's backtest of intraday mean reversion on a shared synthetic market: full
10 symbols x 20 sessions of 1-minute bars, quick 3 x 3) or "fold_fit" (one walk-forward fold fit of
ml.models.run_fold, LightGBM with one thread).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hybridtrader.backtest.run import make_feed
from hybridtrader.backtest.sweep import EngineData, engine_backtest, grid_cells
from hybridtrader.config import ComputeConfig, Config, with_overrides
from hybridtrader.ml.models import FitSettings, FoldData, FoldTask, run_fold
from hybridtrader.tasks import TaskContext, run

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
WORKERS = 2
BACKENDS = {
    "sequential": ComputeConfig(),
    "pool": ComputeConfig(backend="pool", workers=WORKERS),
    "ray": ComputeConfig(backend="ray"),
}

Workload = tuple[Callable[[Any, TaskContext], Any], dict[str, Any], Any]


def fold_fit_workload(n_tasks: int, full: bool) -> Workload:
    """`n_tasks` LightGBM fold fits (one thread, no early stop) on `rows` samples x 20 features with a
    planted signal; the tasks share one feature matrix and take different folds of it."""
    rows, rounds = (50_000, 200) if full else (4_000, 40)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows * 2, 20))
    y = ((x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.standard_normal(len(x))) > 0).astype(np.int32)
    settings = FitSettings("lightgbm", {"num_leaves": 63}, rounds, rounds, 0.05, 1, 0)
    names = [f"f{i}" for i in range(20)]
    tasks = {}
    cut = rows * 4 // 5
    for i in range(n_tasks):
        window = np.arange(rows) + i * rows // n_tasks  # overlapping windows, as walk-forward folds are
        tasks[f"fold={i}"] = FoldTask(i, 0, settings, names, window[:cut], window[cut:], window[cut:])
    return run_fold, tasks, FoldData(x, y)


def backtest_workload(n_tasks: int, full: bool) -> Workload:
    """`n_tasks` sweep cells (entry_z x window of intraday mean reversion's rule) of the engine's backtest
    on one synthetic market, built once and shared, as `hybridtrader sweep` runs them."""
    symbols, sessions = (10, 20) if full else (3, 3)
    sets = ["backtest.strategies=[intraday_mean_reversion]", "backtest.use_models=false"]
    sets += [f"backtest.synth.symbols={symbols}", f"backtest.synth.sessions={sessions}"]
    cfg = with_overrides(Config(), sets)
    feed, data, info = make_feed(cfg, seed=1)
    side = int(np.sqrt(n_tasks))
    key = "ml_training.labels.mean_reversion"
    grid = {
        f"{key}.entry_z": [1.0 + 0.25 * i for i in range(n_tasks // side)],
        f"{key}.window": [5 + 5 * i for i in range(side)],
    }
    return engine_backtest, grid_cells(grid), EngineData(cfg, feed.bars, data, info)  # type: ignore[attr-defined]


WORKLOADS: dict[str, Callable[[int, bool], Workload]] = {
    "backtest": backtest_workload,
    "fold_fit": fold_fit_workload,
}


@dataclass(frozen=True)
class Timed:
    """A task's result with where and when it ran (time.time() is one clock for every local process)."""

    result: Any
    pid: int
    start: float  # epoch seconds at the task's entry, after its input arrived
    end: float  # epoch seconds at its return, before its result is sent back
    cpu: float  # CPU seconds the task used


def timed(item: tuple[Callable[[Any, TaskContext], Any], Any], ctx: TaskContext) -> Timed:
    """Runs `fn(arg, ctx)` for `item = (fn, arg)` and times it in the worker."""
    fn, arg = item
    start, cpu = time.time(), time.process_time()
    result = fn(arg, ctx)
    return Timed(result, os.getpid(), start, time.time(), time.process_time() - cpu)


def overhead(results: dict[str, Timed], began: float, ended: float) -> dict[str, float]:
    """Where a run's wall time went beside the tasks themselves, from the workers' timestamps:
    - start_s: from `run` called to each worker's first task entering, mean over workers (spawning the
      worker, its imports, the shared data arriving, the task's module imported);
    - first_extra_s: how much longer each worker's first task took than its median task, mean over workers
      (first calls: lazy imports, caches), the rest of a worker's start-up;
    - between_ms: a worker's idle time between two of its tasks, mean per task (the result's return, the next
      task's dispatch and its input's fetch);
    - imbalance_s: the first worker to run out of tasks waits this long for the last one;
    - collect_s: from the last task's return to `run` returning (the result's trip, shutting the pool);
    - busy_s: the tasks' own wall time summed over workers."""
    by_worker: dict[int, list[Timed]] = {}
    for r in sorted(results.values(), key=lambda r: r.start):
        by_worker.setdefault(r.pid, []).append(r)
    runs = list(by_worker.values())
    gaps = [b.start - a.end for rs in runs for a, b in itertools.pairwise(rs)]
    extra = [
        rs[0].end - rs[0].start - float(np.median([r.end - r.start for r in rs[1:]]))
        for rs in runs
        if len(rs) > 1
    ]
    last = [rs[-1].end for rs in runs]
    return {
        "workers_used": len(runs),
        "start_s": round(float(np.mean([rs[0].start - began for rs in runs])), 3),
        "first_extra_s": round(float(np.mean(extra)) if extra else 0.0, 3),
        "between_ms": round(1e3 * float(np.mean(gaps)) if gaps else 0.0, 2),
        "imbalance_s": round(max(last) - min(last), 3),
        "collect_s": round(ended - max(last), 3),
        "busy_s": round(sum(r.end - r.start for r in results.values()), 2),
    }


def tiny(item: int, ctx: TaskContext) -> int:
    return item


def bare_tiny(item: int) -> int:
    return item


@pytest.fixture
def importable() -> Iterator[None]:
    """Ray's workers import this module's tasks by name: its directory on their PYTHONPATH."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).parent), before) if p)
    yield
    if before is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = before


@pytest.fixture
def ray_cluster(importable: None) -> Iterator[Any]:
    """A local Ray instance for one test, shut down after it: its daemons would otherwise share the two
    cores with the sequential and pool measurements."""
    import ray

    ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_started_by_run(importable: None) -> Iterator[None]:
    """Ray as a first sweep meets it: `tasks.run` starts the local cluster; shut down after the test."""
    import ray

    yield
    ray.shutdown()


# Full: enough pool tasks that its startup's jitter (a second) is small beside them; Ray costs ~1 ms a task.
N_TINY = {"sequential": 20_000, "pool": 20_000, "ray": 2_000} if FULL else dict.fromkeys(BACKENDS, 200)
N0 = 2 * WORKERS
REPEATS = 3 if FULL else 1  # each pool run starts its workers (seconds): quick mode keeps CI short


def _record(benchmark: Any, call: Callable[[int], None], label: str, n: int) -> None:
    """Time `call(N)` (the benchmark) and `call(n0)` after a warm-up; the marginal cost of a task is the
    difference of the fastest runs over N - n0 tasks, the startup the fastest run of n0."""
    call(N0)  # warm-up: imports, Ray's worker processes, caches
    small = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call(N0)
        small.append(time.perf_counter() - start)
    benchmark.pedantic(call, args=(n,), rounds=REPEATS, iterations=1)
    startup = min(small)
    per_task = (benchmark.stats.stats.min - startup) / (n - N0)
    info = benchmark.extra_info
    info.update(tasks=n, startup_s=round(startup, 3), per_task_us=round(per_task * 1e6, 1))
    load = os.getloadavg()[0]
    print(f"\n{label}: startup {startup:.3f} s, {per_task * 1e6:.1f} us per task (load {load:.1f})")


@pytest.mark.benchmark(group="task-overhead")
@pytest.mark.parametrize("backend", ["sequential", "pool", "ray"])
def test_overhead_ours(benchmark, request, backend: str) -> None:
    if backend == "ray":
        request.getfixturevalue("ray_cluster")

    def call(n: int) -> None:
        out = run(tiny, {str(i): i for i in range(n)}, BACKENDS[backend])
        assert out.ok and len(out.results) == n

    _record(benchmark, call, f"tasks.run {backend}", N_TINY[backend])


@pytest.mark.benchmark(group="task-overhead")
def test_overhead_peer_process_pool(benchmark) -> None:
    def call(n: int) -> None:
        with ProcessPoolExecutor(WORKERS, mp_context=get_context("spawn")) as pool:
            assert sum(pool.map(bare_tiny, range(n))) == n * (n - 1) // 2

    _record(benchmark, call, "ProcessPoolExecutor.map", N_TINY["pool"])


@pytest.mark.benchmark(group="task-overhead")
def test_overhead_peer_ray(benchmark, ray_cluster: Any) -> None:
    remote = ray_cluster.remote(bare_tiny)

    def call(n: int) -> None:
        assert sum(ray_cluster.get([remote.remote(i) for i in range(n)])) == n * (n - 1) // 2

    _record(benchmark, call, "ray.get([f.remote(i)])", N_TINY["ray"])


# -------------------------------------------------------------------------------------------- speed-up
N_TASKS = 16 if FULL else 4
ROUNDS = 3 if FULL else 1  # min of N; the spread is reported
_sequential: dict[str, Any] = {}  # the sequential runs' fastest seconds and results, for the other backends


def _outputs(results: dict[str, Any]) -> list[bytes]:
    """What a task computed, as bytes: a fold's predictions (its timings vary), a backtest's daily returns."""
    return [np.asarray(getattr(r, "prob", r)).tobytes() for r in results.values()]


@pytest.fixture(scope="module")
def workload() -> Workload:
    """The tasks, after one of them ran here: every backend is timed from the same warm state of this
    process (imports, first calls); a worker's own start-up is then part of its backend's time."""
    fn, inputs, shared = WORKLOADS[os.environ.get("HYBRIDTRADER_BENCH_TASK", "backtest")](N_TASKS, FULL)
    first = next(iter(inputs))
    assert run(fn, {first: inputs[first]}, seed=1, shared=shared).ok
    return fn, inputs, shared


@pytest.mark.benchmark(group="speedup")
@pytest.mark.parametrize("backend", ["sequential", "pool", "ray"])
def test_speedup(benchmark, request, workload: Workload, backend: str) -> None:
    """`speedup` = the fastest sequential run / this backend's fastest (target >= 1.8 on 2 cores); Ray's
    first round starts the local cluster (`first_s`, `speedup_first`), later rounds find it running. The
    overhead figures (see `overhead`) are from the fastest round; `spread` = slowest / fastest - 1."""
    if backend == "ray":
        request.getfixturevalue("ray_started_by_run")
    fn, inputs, shared = workload
    timed_inputs = {k: (fn, v) for k, v in inputs.items()}
    runs: list[tuple[float, Any, dict[str, float]]] = []

    def sweep() -> None:
        began = time.time()
        out = run(timed, timed_inputs, BACKENDS[backend], seed=1, shared=shared)
        ended = time.time()
        assert out.ok, out.failures
        runs.append((ended - began, out, overhead(out.results, began, ended)))

    benchmark.pedantic(sweep, rounds=ROUNDS, iterations=1)
    seconds, out, costs = min(runs, key=lambda r: r[0])
    results = {k: r.result for k, r in out.results.items()}
    if backend == "sequential":
        _sequential.update(seconds=seconds, results=results)
    else:  # the same results whatever the backend
        assert _outputs(results) == _outputs(_sequential["results"])
    seq = _sequential.get("seconds")
    info = benchmark.extra_info
    info.update(tasks=N_TASKS, seconds=round(seconds, 2), task_s=round((seq or seconds) / N_TASKS, 2))
    info.update(spread=round(max(r[0] for r in runs) / seconds - 1, 3), first_s=round(runs[0][0], 2))
    info["task_cpu_s"] = round(sum(r.cpu for r in out.results.values()), 2)
    info |= costs
    if seq is not None:
        info["speedup"] = round(seq / seconds, 2)  # target >= 1.8 on 2 cores for pool and ray
        info["speedup_first"] = round(seq / runs[0][0], 2)
    print(f"\n{N_TASKS} tasks on {backend}: {seconds:.2f} s; {info} (load {os.getloadavg()[0]:.1f})")
