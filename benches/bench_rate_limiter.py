"""try_acquire per call: ours (Rust sliding window) vs limits' MovingWindowRateLimiter (MemoryStorage) vs
pyrate-limiter v4 (Limiter over an InMemoryBucket), same rate, same key, non-blocking.

Each round starts every limiter from an empty state and makes CALLS calls through a bound method, so the
round time in microseconds is the cost per call in nanoseconds (loop overhead included, the same for all).
Group "admitted": the limit exceeds CALLS, every call is admitted. Group "rejected": limit 10, so 99% of
the calls are refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from hybridtrader import RateLimiter
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate
from pytest_benchmark.fixture import BenchmarkFixture

CALLS = 1000
ROUNDS = 2000 if os.environ.get("HYBRIDTRADER_BENCH") == "full" else 100
LIMITS = {"admitted": 1_000_000, "rejected": 10}


def ours(limit: int, explicit_key: bool = True) -> Callable[[], Callable[[], int]]:
    def setup() -> Callable[[], int]:
        acquire = RateLimiter([(limit, 60.0)]).try_acquire

        def run() -> int:
            admitted = 0
            for _ in range(CALLS):
                admitted += acquire("default", 1)
            return admitted

        def run_no_args() -> int:
            admitted = 0
            for _ in range(CALLS):
                admitted += acquire()
            return admitted

        return run if explicit_key else run_no_args

    return setup


def limits_moving_window(limit: int) -> Callable[[], Callable[[], int]]:
    storage = MemoryStorage()
    hit = MovingWindowRateLimiter(storage).hit
    item = RateLimitItemPerMinute(limit)

    def setup() -> Callable[[], int]:
        storage.reset()

        def run() -> int:
            admitted = 0
            for _ in range(CALLS):
                admitted += hit(item, "default")
            return admitted

        return run

    return setup


def pyrate(limit: int) -> Iterator[Callable[[], Callable[[], int]]]:
    bucket = InMemoryBucket([Rate(limit, Duration.MINUTE)])
    limiter = Limiter(bucket)
    acquire = limiter.try_acquire

    def setup() -> Callable[[], int]:
        bucket.flush()

        def run() -> int:
            admitted = 0
            for _ in range(CALLS):
                admitted += acquire("default", 1, blocking=False)
            return admitted

        return run

    yield setup
    limiter.close()


def _bench(benchmark: BenchmarkFixture, make: Callable[[], Callable[[], int]], group: str) -> None:
    benchmark.group = f"try_acquire x{CALLS} ({group}; us/round = ns/call)"
    state: dict[str, Callable[[], int]] = {}

    def setup() -> None:
        state["run"] = make()

    admitted = benchmark.pedantic(
        lambda: state["run"](), setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=3
    )
    assert admitted == min(CALLS, LIMITS[group])  # the scenario is what the group says


@pytest.mark.parametrize("group", list(LIMITS))
def test_ours(benchmark: BenchmarkFixture, group: str) -> None:
    _bench(benchmark, ours(LIMITS[group]), group)


@pytest.mark.parametrize("group", list(LIMITS))
def test_ours_no_args(benchmark: BenchmarkFixture, group: str) -> None:
    _bench(benchmark, ours(LIMITS[group], explicit_key=False), group)


@pytest.mark.parametrize("group", list(LIMITS))
def test_limits_moving_window(benchmark: BenchmarkFixture, group: str) -> None:
    _bench(benchmark, limits_moving_window(LIMITS[group]), group)


@pytest.mark.parametrize("group", list(LIMITS))
def test_pyrate_limiter(benchmark: BenchmarkFixture, group: str) -> None:
    made = pyrate(LIMITS[group])
    _bench(benchmark, next(made), group)
    next(made, None)
