"""The task runner: `run(fn, inputs, compute)` runs independent research tasks in this process, on a local
process pool or on a Ray cluster, with the same results on each (DESIGN.md, "Scale-out").

Contract:
- `inputs` maps a task key (a string naming the task, e.g. "fold=3,trial=1") to a serialisable input; `fn`
  is a module-level function `fn(item, ctx) -> result` with a serialisable result. `ctx.seed` is derived
  from the sweep seed and the key by a stable hash (`task_seed`), never from the worker or the order, so
  results do not depend on the backend or the number of workers.
- `shared` is one large read-only object every task needs (bars, a feature matrix). It travels once: put
  in Ray's object store once, or pickled once to a temporary file each pool worker reads when it starts;
  never pickled per task.
  (A parquet path on a shared filesystem works too: pass the path and read it in `fn`.)
- A task that raises, or whose worker process dies, is retried once; if it fails again it is reported in
  `Outcome.failures` with its error and every other result is kept.
- With `store`, each result is written atomically to its own file as soon as it arrives; a later run on
  the same store (same `fn` and seed) loads those and computes only the missing keys.

A worker process that dies (killed, out of memory) counts as a failed attempt of the task it was running:
Ray knows that task; the pool finds it by rerunning the tasks in flight one at a time (see `_pool`).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import multiprocessing
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from hybridtrader.data.atomic import StateFileError, read_state, write_atomic, write_state
from hybridtrader.errors import ConfigError, StateError

if TYPE_CHECKING:
    from hybridtrader.config import ComputeConfig

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[int, int], None]  # (tasks done, tasks in all)

STORE_VERSION = 1
RETRIES = 1  # a failed task runs once more before it is reported


@dataclass(frozen=True)
class TaskContext:
    key: str
    seed: int  # task_seed(sweep seed, key)
    shared: Any = field(default=None, repr=False)


@dataclass(frozen=True)
class TaskFailure:
    key: str
    error: str  # one line: "ExceptionType: message"
    attempts: int


@dataclass(frozen=True)
class Outcome(Generic[R]):
    results: dict[str, R]  # in the order of the inputs, whatever order the tasks finished in
    failures: dict[str, TaskFailure]
    resumed: int  # results loaded from the store instead of computed

    @property
    def ok(self) -> bool:
        return not self.failures


def machine_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Polars sizes its thread pool when it is imported, from this variable (default: every core). A worker
# process or Ray task holds one core of several; its own threads would only contend with its neighbours.
POLARS_THREADS = "POLARS_MAX_THREADS"


@contextlib.contextmanager
def _worker_threads(n: int) -> Iterator[None]:
    """Spawned workers inherit the environment they start with: while the pool runs, `n` Polars threads
    each, unless the user chose a number."""
    if POLARS_THREADS in os.environ:
        yield
        return
    os.environ[POLARS_THREADS] = str(n)
    try:
        yield
    finally:
        del os.environ[POLARS_THREADS]


def task_seed(seed: int, key: str) -> int:
    """A task's seed: the first 31 bits of BLAKE2b(sweep seed, key), stable across processes, machines and
    Python versions (Python's hash() of a string is salted per process). 31 bits fit every library's seed
    (LightGBM takes a C int)."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF


def parse_compute(text: str) -> ComputeConfig:
    """`--compute seq|sequential|pool[:N]|ray[:ADDRESS]` as a `ComputeConfig`."""
    from hybridtrader.config import ComputeConfig

    name, _, arg = text.partition(":")
    if name in ("seq", "sequential") and not arg:
        return ComputeConfig(backend="sequential")
    if name == "pool":
        if not arg:
            return ComputeConfig(backend="pool")
        if arg.isdigit() and int(arg) >= 1:
            return ComputeConfig(backend="pool", workers=int(arg))
    if name == "ray":
        return ComputeConfig(backend="ray", address=arg or None)
    raise ConfigError(f"--compute: expected seq, pool[:N] or ray[:ADDRESS], got {text!r}")


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or repr(e)
    return f"{type(e).__name__}: {text}"


# ------------------------------------------------------------------------------------------ store
class _Store:
    """One pickle per finished task, `<dir>/<sha256(key)[:20]>.pkl`, written atomically; `sweep.json` names
    the function and seed the results belong to, so a store is never resumed by a different sweep."""

    def __init__(self, directory: Path, fn: Callable[..., Any], seed: int) -> None:
        self.dir = directory
        ident = {"function": f"{fn.__module__}.{fn.__qualname__}", "seed": seed}
        manifest = directory / "sweep.json"
        try:
            found = read_state(manifest, STORE_VERSION)
        except StateFileError as e:
            raise StateError(str(e)) from None
        if found is None:
            write_state(manifest, STORE_VERSION, ident)
        elif found != ident:
            raise StateError(
                f"results store {directory} holds the sweep {found}, not {ident}; use another directory"
            )

    def path(self, key: str) -> Path:
        return self.dir / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.pkl"

    def load(self, key: str) -> tuple[bool, Any]:
        path = self.path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return False, None
        try:
            record = pickle.loads(raw)
        except Exception as e:
            raise StateError(
                f"task result {path} is corrupt ({_one_line(e)}); delete it to recompute"
            ) from None
        if not isinstance(record, dict) or record.get("format_version") != STORE_VERSION:
            raise StateError(f"task result {path} is not a format {STORE_VERSION} result; delete it")
        if record.get("key") != key:
            raise StateError(f"task result {path} belongs to key {record.get('key')!r}, not {key!r}")
        return True, record["result"]

    def save(self, key: str, result: Any) -> None:
        body = pickle.dumps({"format_version": STORE_VERSION, "key": key, "result": result}, protocol=5)
        write_atomic(self.path(key), lambda f: f.write(body))


# --------------------------------------------------------------------------------------- backends
Done = Callable[[str, Any], None]
Failed = Callable[[str, str, int], None]


def _sequential(
    fn: Callable[..., Any],
    todo: dict[str, Any],
    seeds: dict[str, int],
    shared: Any,
    done: Done,
    failed: Failed,
) -> None:
    for key, item in todo.items():
        for attempt in range(1, RETRIES + 2):
            try:
                result = fn(item, TaskContext(key, seeds[key], shared))
            except Exception as e:
                if attempt > RETRIES:
                    failed(key, _one_line(e), attempt)
            else:
                done(key, result)
                break


_worker_shared: Any = None


def _pool_init(shared_file: str | None) -> None:
    global _worker_shared
    if shared_file is not None:
        with open(shared_file, "rb") as f:
            _worker_shared = pickle.load(f)
    atexit.register(_exit_now)


def _exit_now() -> None:
    """A pool worker's last exit step: its results are all sent (synchronously) by now, and tearing down
    its interpreter (modules, Polars' threads, the shared data) kept the caller waiting on `shutdown` (0.6
    to 1.4 s on a loaded machine) with nothing left to compute. Logs and stdio are flushed first; handlers
    registered later by the tasks have already run (atexit runs last-in first-out)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _pool_call(fn: Callable[..., Any], item: Any, key: str, seed: int) -> Any:
    return fn(item, TaskContext(key, seed, _worker_shared))


@contextlib.contextmanager
def _shared_file(shared: Any) -> Iterator[str | None]:
    """`shared` pickled once to a private temporary file that each pool worker reads when it starts.
    Handing it over as the initializer's argument instead would block this process in each worker's
    spawn until that worker had imported everything and read the data, so workers started one after the
    other (about a second each) instead of together."""
    if shared is None:
        yield None
        return
    fd, path = tempfile.mkstemp(prefix="hybridtrader-shared-", suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(shared, f, protocol=5)
        yield path
    finally:
        os.unlink(path)


def _pool(
    fn: Callable[..., Any],
    todo: dict[str, Any],
    seeds: dict[str, int],
    shared_file: str | None,
    workers: int,
    done: Done,
    failed: Failed,
) -> None:
    """A local process pool; its workers read the shared data from `shared_file` (`_shared_file`). A
    worker that dies breaks the whole `ProcessPoolExecutor`, failing every task in flight with it; only a
    task that was alone in flight can be blamed. So the tasks in flight at a break are not charged an
    attempt but rerun one at a time in a fresh pool, where a death is the lone task's own (charged, and
    that task stays alone for its retry)."""
    # spawn, not fork: forking a process whose OpenMP runtime (LightGBM) is initialised can deadlock.
    mp = multiprocessing.get_context("spawn")
    pending = list(todo)  # keys to submit, in order; retries and suspects go first
    attempts = dict.fromkeys(todo, 0)
    alone: set[str] = set()  # keys that run with nothing else in flight

    def retry_or_fail(key: str, error: str) -> None:
        if attempts[key] > RETRIES:
            failed(key, error, attempts[key])
        else:
            pending.insert(0, key)

    threads = max(1, machine_threads() // workers)
    while pending:
        n = min(workers, len(pending))
        with (
            _worker_threads(threads),
            ProcessPoolExecutor(n, mp_context=mp, initializer=_pool_init, initargs=(shared_file,)) as pool,
        ):
            running: dict[Future[Any], str] = {}
            while pending or running:
                # Never more in flight than workers (a break then involves few tasks); suspects alone.
                while (
                    pending
                    and len(running) < n
                    and not alone.intersection(running.values())
                    and not (pending[0] in alone and running)
                ):
                    key = pending.pop(0)
                    attempts[key] += 1
                    running[pool.submit(_pool_call, fn, todo[key], key, seeds[key])] = key
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                died = []
                for fut in finished:
                    key = running.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        died.append(key)
                    except Exception as e:
                        retry_or_fail(key, _one_line(e))
                    else:
                        done(key, result)
                if not died:
                    continue
                suspects = died + list(running.values())  # the rest in flight die with the pool
                if len(suspects) == 1:
                    alone.add(suspects[0])
                    retry_or_fail(suspects[0], "worker process died (killed or crashed)")
                else:
                    for key in suspects:
                        attempts[key] -= 1
                        alone.add(key)
                    pending[:0] = suspects
                break  # this pool is broken: start a fresh one


_ray_node_here: str | None = None  # the node of the local cluster `_ray` started (one Polars thread a worker)


def _ray(
    fn: Callable[..., Any],
    todo: dict[str, Any],
    seeds: dict[str, int],
    shared: Any,
    compute: ComputeConfig,
    done: Done,
    failed: Failed,
) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "compute.backend: ray needs the ray extra (pip install 'hybridtrader[ray]')"
        ) from None
    # One CPU a task, so one Polars thread (Ray already does the same for OpenMP). A cluster started here
    # inherits that from this process's environment, so its workers, started with it, serve the tasks; on
    # any other cluster a runtime_env sets it, at the price of starting workers dedicated to that env.
    global _ray_node_here
    if not ray.is_initialized():
        if compute.address:
            try:
                ray.init(address=compute.address, log_to_driver=False)
            except Exception as e:  # Ray raises ConnectionError, RuntimeError... depending on the address
                raise ConfigError(
                    f"compute.address: cannot use Ray at {compute.address!r}: {_one_line(e)}"
                ) from None
        else:
            with _worker_threads(1):
                ray.init(num_cpus=compute.workers, include_dashboard=False, log_to_driver=False)
            if not os.environ.get("RAY_ADDRESS"):  # with it set, ray.init joined that cluster instead
                _ray_node_here = ray.get_runtime_context().get_node_id()
    options: dict[str, Any] = {"num_cpus": 1, "max_retries": RETRIES, "retry_exceptions": True}
    if ray.get_runtime_context().get_node_id() != _ray_node_here:
        options["runtime_env"] = {"env_vars": {POLARS_THREADS: os.environ.get(POLARS_THREADS, "1")}}
    remote = ray.remote(_ray_call).options(**options)
    common = ray.put((fn, shared))  # once: every task gets a reference, resolved in the worker
    refs = {remote.remote(common, todo[key], key, seeds[key]): key for key in todo}
    waiting = list(refs)
    while waiting:
        # What finishes within 50 ms comes back as one batch: two round trips per batch, not per task.
        ready, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=0.05)
        try:
            batch = ray.get(ready)  # one round trip for the batch
        except ray.exceptions.RayError:
            batch = None  # some failed: take them one by one
        for i, ref in enumerate(ready):
            key = refs[ref]
            try:
                result = batch[i] if batch is not None else ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if isinstance(e.cause, BaseException) else e
                failed(key, _one_line(cause), RETRIES + 1)
            except ray.exceptions.RayError as e:  # the worker died on every attempt
                failed(key, f"worker process died ({type(e).__name__})", RETRIES + 1)
            else:
                done(key, result)


def _ray_call(common: tuple[Callable[..., Any], Any], item: Any, key: str, seed: int) -> Any:
    fn, shared = common
    return fn(item, TaskContext(key, seed, shared))


# -------------------------------------------------------------------------------------------- run
def run(
    fn: Callable[[T, TaskContext], R],
    inputs: Mapping[str, T],
    compute: ComputeConfig | None = None,
    *,
    seed: int = 0,
    shared: Any = None,
    store: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Outcome[R]:
    """Run `fn(item, ctx)` for every `inputs` item on `compute`'s backend (default sequential); see the
    module docstring for seeds, shared data, retries and resuming."""
    from hybridtrader.config import ComputeConfig

    compute = compute or ComputeConfig()
    keys = list(inputs)
    bad = [k for k in keys if not isinstance(k, str) or not k]
    if bad:
        raise ConfigError(f"task keys must be non-empty strings, got {bad[0]!r}")
    saved = _Store(Path(store), fn, seed) if store is not None else None
    results: dict[str, Any] = {}
    failures: dict[str, TaskFailure] = {}
    if saved is not None:
        for key in keys:
            found, result = saved.load(key)
            if found:
                results[key] = result
    resumed = len(results)
    total = len(keys)
    report = progress or (lambda done, total: None)
    report(resumed, total)

    def done(key: str, result: Any) -> None:
        if saved is not None:
            saved.save(key, result)  # persisted before it counts as done
        results[key] = result
        report(len(results) + len(failures), total)

    def failed(key: str, error: str, attempts: int) -> None:
        failures[key] = TaskFailure(key, error, attempts)
        report(len(results) + len(failures), total)

    todo = {k: inputs[k] for k in keys if k not in results}
    seeds = {k: task_seed(seed, k) for k in todo}
    if todo:
        workers = min(compute.workers or machine_threads(), len(todo))
        if compute.backend == "ray":
            _ray(fn, todo, seeds, shared, compute, done, failed)
        elif compute.backend == "pool" and workers > 1:
            with _shared_file(shared) as shared_file:
                _pool(fn, todo, seeds, shared_file, workers, done, failed)
        else:
            _sequential(fn, todo, seeds, shared, done, failed)
    ordered = {k: results[k] for k in keys if k in results}
    return Outcome(ordered, {k: failures[k] for k in keys if k in failures}, resumed)


__all__ = ["Outcome", "TaskContext", "TaskFailure", "machine_threads", "parse_compute", "run", "task_seed"]
