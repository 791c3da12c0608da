"""hybridtrader.tasks on every backend (sequential, process pool, a real local Ray cluster): identical
results whatever the backend or worker count, stable per-key seeds, a SIGKILLed worker's task retried,
failures reported with the rest kept, resume after a real interruption, progress, the results store's
checks, and the --compute flag."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import task_fns
from hybridtrader.cli import main
from hybridtrader.config import ComputeConfig, config_from_dict
from hybridtrader.errors import ConfigError, StateError
from hybridtrader.tasks import parse_compute, run, task_seed
from hypothesis import given
from hypothesis import strategies as st

SHARED = np.linspace(-1.0, 1.0, 50)
SEQ = ComputeConfig()
POOL = ComputeConfig(backend="pool", workers=2)
RAY = ComputeConfig(backend="ray")


BACKENDS = {"sequential": SEQ, "pool": POOL, "ray": RAY}
PARALLEL = pytest.mark.parametrize("backend", ["pool", "ray"], indirect=True)


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> ComputeConfig:
    """Each backend in turn (Ray: the session's local cluster)."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return BACKENDS[request.param]


def fingerprint(results: dict[str, dict]) -> list[tuple[str, str, int, bytes]]:
    """Every result's key, seed and the exact bytes of its array (pickles of equal dicts can differ in
    their memo layout, so compare the contents)."""
    return [(k, r["key"], r["seed"], r["value"].tobytes()) for k, r in results.items()]


def inputs(n: int = 6, **extra: object) -> dict[str, dict]:
    return {f"cell={i}": {"n": 3 + i % 3, "scale": 1.0 + i, **extra} for i in range(n)}


def test_task_seed_is_a_stable_hash_of_seed_and_key() -> None:
    digest = hashlib.blake2b(b"7\x00cell=1", digest_size=8).digest()
    assert task_seed(7, "cell=1") == int.from_bytes(digest, "little") % 2**31
    # Python's own str hash is salted per process; ours must not be: same value in a fresh interpreter.
    code = "from hybridtrader.tasks import task_seed; print(task_seed(7, 'cell=1'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert int(out.stdout) == task_seed(7, "cell=1")


@given(st.integers(0, 2**40), st.lists(st.text(min_size=1), min_size=2, max_size=20, unique=True))
def test_task_seeds_fit_31_bits_and_differ_by_key(seed: int, keys: list[str]) -> None:
    seeds = [task_seed(seed, k) for k in keys]
    assert all(0 <= s < 2**31 for s in seeds)
    assert len(set(seeds)) == len(seeds)  # 2**31 values: a collision among 20 keys is ~1e-7


@PARALLEL
def test_equal_to_sequential_byte_for_byte_whatever_the_worker_count(backend: ComputeConfig) -> None:
    items = inputs(7)
    seq = run(task_fns.noisy_dot, items, SEQ, seed=3, shared=SHARED)
    assert seq.ok and list(seq.results) == list(items)  # input order
    for r, key in zip(seq.results.values(), items, strict=True):  # the reference: a hand-made draw
        draw = np.random.default_rng(task_seed(3, key)).standard_normal((items[key]["n"], len(SHARED)))
        np.testing.assert_array_equal(r["value"], draw @ SHARED * items[key]["scale"])
    for workers in (2, 3):
        other = run(task_fns.noisy_dot, items, backend.model_copy(update={"workers": workers}), seed=3,
                    shared=SHARED)  # fmt: skip
        assert fingerprint(other.results) == fingerprint(seq.results)
    other = run(task_fns.noisy_dot, items, SEQ, seed=4, shared=SHARED)
    assert fingerprint(other.results) != fingerprint(seq.results)  # the sweep seed matters


@PARALLEL
def test_a_task_whose_worker_is_killed_is_retried(tmp_path: Path, backend: ComputeConfig) -> None:
    items = inputs(4)
    items["cell=2"] = {**items["cell=2"], "marker": str(tmp_path / "died")}
    out = run(task_fns.dies_once, items, backend, seed=1, shared=SHARED)
    assert (tmp_path / "died").exists()  # the first attempt really killed its worker
    assert out.ok, out.failures
    ref = run(task_fns.noisy_dot, items, SEQ, seed=1, shared=SHARED)
    assert fingerprint(out.results) == fingerprint(ref.results)


@PARALLEL
def test_a_worker_that_always_dies_is_reported_and_the_rest_kept(backend: ComputeConfig) -> None:
    items = inputs(6)
    items["cell=1"] = {**items["cell=1"], "die": True}
    out = run(task_fns.dies_always, items, backend, seed=1, shared=SHARED)
    assert list(out.failures) == ["cell=1"]
    assert out.failures["cell=1"].attempts == 2 and "worker process died" in out.failures["cell=1"].error
    assert list(out.results) == ["cell=0", "cell=2", "cell=3", "cell=4", "cell=5"]  # none blamed wrongly


def test_a_bad_task_is_retried_once_then_reported_with_the_rest_kept(tmp_path: Path, backend) -> None:
    items = inputs(5, attempts=str(tmp_path / "attempts"))
    items["cell=3"] = {**items["cell=3"], "bad": True}
    out = run(task_fns.raises_on_bad, items, backend, seed=2, shared=SHARED)
    assert not out.ok and list(out.failures) == ["cell=3"]
    failure = out.failures["cell=3"]
    assert failure.attempts == 2 and failure.error == "ValueError: bad input 3 for cell=3"
    assert (tmp_path / "attempts").read_text().splitlines() == ["cell=3", "cell=3"]
    good = {k: v for k, v in inputs(5).items() if k != "cell=3"}
    ref = run(task_fns.noisy_dot, good, SEQ, seed=2, shared=SHARED)
    assert fingerprint(out.results) == fingerprint(ref.results)


@PARALLEL
def test_resume_after_a_killed_sweep_computes_only_the_missing_keys(tmp_path: Path, backend) -> None:
    store, log, stop = tmp_path / "store", tmp_path / "log", tmp_path / "stop"
    items = inputs(8, log=str(log))
    items["cell=5"] = {**items["cell=5"], "stop": str(stop)}
    stop.touch()
    script = (
        "import pickle, sys, numpy as np, task_fns\n"
        "from hybridtrader.tasks import run\n"
        "items = pickle.loads(sys.stdin.buffer.read())\n"
        f"run(task_fns.logged, items, seed=9, shared=np.linspace(-1.0, 1.0, 50), store={str(store)!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    proc = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(items), env=env, check=False)
    assert proc.returncode == -9  # the sweep process was killed at cell=5
    assert log.read_text().splitlines() == [f"cell={i}" for i in range(5)]
    stop.unlink()
    seen: list[tuple[int, int]] = []
    out = run(
        task_fns.logged,
        items,
        backend,
        seed=9,
        shared=SHARED,
        store=store,
        progress=lambda *a: seen.append(a),
    )
    assert out.ok and out.resumed == 5
    assert sorted(log.read_text().splitlines()[5:]) == ["cell=5", "cell=6", "cell=7"]  # only the missing
    ref = run(task_fns.noisy_dot, items, SEQ, seed=9, shared=SHARED)
    assert fingerprint(out.results) == fingerprint(ref.results)
    assert seen[0] == (5, 8) and seen[-1] == (8, 8) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    again = run(task_fns.logged, items, SEQ, seed=9, shared=SHARED, store=store)
    assert again.resumed == 8 and len(log.read_text().splitlines()) == 8  # nothing recomputed


def test_the_store_refuses_another_sweep_and_corrupt_results(tmp_path: Path) -> None:
    run(task_fns.noisy_dot, inputs(2), seed=1, shared=SHARED, store=tmp_path)
    with pytest.raises(StateError, match=r"holds the sweep .*seed.*1.*use another directory"):
        run(task_fns.noisy_dot, inputs(2), seed=2, shared=SHARED, store=tmp_path)
    with pytest.raises(StateError, match="holds the sweep"):
        run(task_fns.raises_on_bad, inputs(2), seed=1, shared=SHARED, store=tmp_path)
    victim = next(p for p in tmp_path.glob("*.pkl"))
    victim.write_bytes(b"\x80\x05truncated")
    with pytest.raises(StateError, match=f"task result {re.escape(str(victim))} is corrupt"):
        run(task_fns.noisy_dot, inputs(2), seed=1, shared=SHARED, store=tmp_path)
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(StateError, match=r"sweep\.json is corrupt"):
        run(task_fns.noisy_dot, inputs(2), seed=1, shared=SHARED, store=tmp_path)


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="task keys must be non-empty strings, got ''"):
        run(task_fns.noisy_dot, {"": {"n": 1, "scale": 1.0}}, shared=SHARED)


def test_compute_flag_and_config() -> None:
    assert parse_compute("seq") == ComputeConfig()
    assert parse_compute("pool") == ComputeConfig(backend="pool")
    assert parse_compute("pool:3") == ComputeConfig(backend="pool", workers=3)
    assert parse_compute("ray") == ComputeConfig(backend="ray")
    assert parse_compute("ray:ray://head:10001") == ComputeConfig(backend="ray", address="ray://head:10001")
    for bad in ("pool:0", "pool:x", "threads", "seq:2", ""):
        with pytest.raises(
            ConfigError, match=rf"--compute: expected seq, pool\[:N\] or ray\[:ADDRESS\], got {bad!r}"
        ):
            parse_compute(bad)
    assert config_from_dict({"compute": {"backend": "ray", "address": "auto"}}).compute.address == "auto"
    with pytest.raises(ValueError, match=r"compute: .*address is for the ray backend, not 'pool'"):
        config_from_dict({"compute": {"backend": "pool", "address": "auto"}})
    with pytest.raises(ValueError, match=r"compute\.backend"):
        config_from_dict({"compute": {"backend": "dask"}})


def test_train_command_reports_a_bad_compute_flag_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--compute", "pool:zero"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --compute: expected seq, pool[:N] or ray[:ADDRESS], got 'pool:zero'\n"
