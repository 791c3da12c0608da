"""The sliding-window limiter itself: exactness against a brute-force reference (injected clock), the
window invariant under real threads on the real clock, multi-rate, keys, validation, blocking and async."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import threading
import time

import pytest
from hybridtrader import RateLimiter
from hybridtrader._core import SlidingWindowLimiter
from hybridtrader.config import BackoffConfig, Config, ConfigError, config_from_dict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NS = 1_000_000_000


class Reference:
    """Brute force: keep every admission, recount each window from scratch on every request."""

    def __init__(self, rates: list[tuple[int, int]]) -> None:
        self.rates = rates  # (limit, window_ns)
        self.log: dict[str, list[tuple[int, int]]] = {}
        self.last: dict[str, int] = {}

    def held(self, key: str, window_ns: int, now: int) -> int:
        return sum(w for t, w in self.log.get(key, []) if t + window_ns > now)

    def fits(self, key: str, weight: int, now: int) -> bool:
        return all(self.held(key, win, now) + weight <= lim for lim, win in self.rates)

    def try_acquire(self, key: str, weight: int, now: int) -> bool:
        now = max(now, self.last.get(key, 0))
        self.last[key] = now
        ok = self.fits(key, weight, now)
        if ok:
            self.log.setdefault(key, []).append((now, weight))
        return ok

    def wait_ns(self, key: str, weight: int, now: int) -> int:
        now = max(now, self.last.get(key, 0))
        if self.fits(key, weight, now):
            return 0
        expiries = sorted({t + win for t, _ in self.log[key] for _, win in self.rates if t + win > now})
        return next(e for e in expiries if self.fits(key, weight, e)) - now


class AdmittedLog:
    """Admissions sorted by time with prefix sums of weight, to count any window in O(log n)."""

    def __init__(self, admitted: list[tuple[int, int]]) -> None:
        admitted = sorted(admitted)
        self.ts = [t for t, _ in admitted]
        self.prefix = [0, *itertools.accumulate(w for _, w in admitted)]

    def held(self, lo: int, hi: int) -> int:
        """Weight admitted at times in (lo, hi]."""
        return self.prefix[bisect.bisect_right(self.ts, hi)] - self.prefix[bisect.bisect_right(self.ts, lo)]


def window_violations(admitted: list[tuple[int, int]], limit: int, window_ns: int) -> list[int]:
    """Start times s (taken at admissions) where [s, s + window) holds more than `limit`."""
    log = AdmittedLog(admitted)
    return [s for s in log.ts if log.held(s - 1, s + window_ns - 1) > limit]


rates_st = st.lists(st.tuples(st.integers(1, 8), st.integers(1, 2_000)), min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    rates=rates_st,
    steps=st.lists(
        st.tuples(st.integers(-300, 900), st.sampled_from(["default", "AAPL", "orders"]), st.integers(1, 8)),
        max_size=120,
    ),
)
def test_decisions_and_waits_match_brute_force(rates: list[tuple[int, int]], steps: list) -> None:
    limiter = SlidingWindowLimiter([(lim, win / NS) for lim, win in rates])
    reference = Reference(rates)
    smallest = min(lim for lim, _ in rates)
    now = 10_000
    for dt, key, weight in steps:
        now = max(now + dt, 0)  # negative steps exercise the never-backwards clamp
        weight = min(weight, smallest)
        assert limiter.wait_ns_at(now, key, weight) == reference.wait_ns(key, weight, now)
        assert limiter.try_acquire_at(now, key, weight) == reference.try_acquire(key, weight, now)
    for log in reference.log.values():
        for lim, win in rates:
            assert window_violations(log, lim, win) == []
    stats = limiter.stats()
    for key, log in reference.log.items():
        assert stats["keys"][key]["admitted"] == len(log)
        assert stats["keys"][key]["admitted_weight"] == sum(w for _, w in log)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rates=st.lists(st.tuples(st.integers(2, 12), st.integers(15, 60)), min_size=1, max_size=2),
    threads=st.integers(2, 6),
    weights=st.lists(st.integers(1, 3), min_size=1, max_size=4),
)
def test_threads_hammering_one_key_never_exceed_and_refuse_only_when_full(
    rates: list[tuple[int, int]], threads: int, weights: list[int]
) -> None:
    """Real threads, real clock: the limiter stamps each decision with the time it took it (inside its
    lock), so the recorded log is exactly what the limiter decided on."""
    limiter = RateLimiter(rates=[(lim, ms / 1000) for lim, ms in rates])
    smallest = min(lim for lim, _ in rates)
    run_ns = 3 * max(ms for _, ms in rates) * 1_000_000
    decisions: list[list[tuple[bool, int, int]]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def hammer(i: int) -> None:
        out = decisions[i]
        start.wait()
        end = time.monotonic_ns() + run_ns
        n = 0
        while time.monotonic_ns() < end:
            w = min(weights[(i + n) % len(weights)], smallest)
            ok, t = limiter.try_acquire_stamped("shared", w)
            out.append((ok, t, w))
            n += 1

    pool = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    every = [d for thread in decisions for d in thread]
    admitted = [(t, w) for ok, t, w in every if ok]
    assert admitted, "nothing was admitted"
    for lim, ms in rates:
        assert window_violations(admitted, lim, ms * 1_000_000) == []
    # A refusal at t is justified: some rate's window (t - W, t] already held more than limit - w.
    log = AdmittedLog(admitted)
    for ok, t, w in every:
        if not ok:
            assert any(log.held(t - ms * 1_000_000, t) + w > lim for lim, ms in rates), (
                f"refused weight {w} at {t} with room in every window"
            )
    stats = limiter.stats()
    assert stats["admitted"] == len(admitted)
    assert stats["rejected"] == len(every) - len(admitted)


def test_multi_rate_hand_computed() -> None:
    lim = SlidingWindowLimiter([(200, 60.0), (10, 1.0)])
    assert [lim.try_acquire_at(i, "k") for i in range(11)] == [True] * 10 + [False]
    # The first of the ten leaves the 1 s window at exactly 1 s after it.
    assert lim.wait_ns_at(10, "k") == NS - 10
    assert not lim.try_acquire_at(NS - 1, "k")
    assert lim.try_acquire_at(NS, "k")
    # Fill the minute: 20 seconds x 10 per second = 200, then the per-minute rate refuses.
    for s in range(2, 21):
        for i in range(10):
            assert lim.try_acquire_at(s * NS + i, "k") or (s == 20 and i == 9)
    assert lim.stats()["keys"]["k"]["in_window"][0] == 200
    assert not lim.try_acquire_at(30 * NS, "k")
    assert lim.wait_ns_at(30 * NS, "k") == 60 * NS - 30 * NS  # until the t=0 admission leaves the minute


def test_weights_and_keys_are_independent() -> None:
    lim = SlidingWindowLimiter([(5, 1.0)])
    assert lim.try_acquire_at(0, "a", 5)
    assert not lim.try_acquire_at(1, "a", 1)
    assert lim.try_acquire_at(1, "b", 3)
    assert lim.try_acquire_at(1, None, 5)  # None is the "default" key
    assert not lim.try_acquire_at(2, "default", 1)
    assert lim.wait_ns_at(2, "never-used", 5) == 0
    stats = lim.stats()
    assert stats["keys"]["a"] == {"admitted": 1, "rejected": 1, "admitted_weight": 5, "in_window": [5]}
    assert stats["keys"]["b"]["admitted_weight"] == 3
    assert stats["keys"]["default"]["rejected"] == 1
    assert (stats["admitted"], stats["rejected"], stats["admitted_weight"]) == (3, 2, 13)


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ([(0, 1.0)], "rates[0]: limit must be a positive integer, got 0"),
        ([(200, 60.0), (-5, 1.0)], "rates[1]: limit must be a positive integer, got -5"),
        ([(10, 0.0)], "rates[0]: window"),
        ([(10, -1.0)], "rates[0]: window"),
        ([(10, float("nan"))], "rates[0]: window"),
        ([(10, float("inf"))], "rates[0]: window"),
        ([], "at least one"),
    ],
)
def test_bad_rates_are_value_errors_naming_them(rates: list, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RateLimiter(rates)


def test_bad_weights_and_timeouts() -> None:
    lim = RateLimiter([(200, 60.0), (10, 1.0)])
    with pytest.raises(ValueError, match=r"weight 11 exceeds the limit of rates\[1\] \(10 per 1 s\)"):
        lim.try_acquire("default", 11)
    for call in (lim.try_acquire, lim.wait_time, lim.acquire, lim.poll):
        with pytest.raises(ValueError, match="weight must be >= 1, got 0"):
            call("default", 0)
    with pytest.raises(ValueError, match="timeout"):
        lim.acquire("default", 1, timeout=-1.0)
    with pytest.raises(ValueError, match="timeout"):
        asyncio.run(lim.acquire_async("default", 1, timeout=float("nan")))
    with pytest.raises(ValueError, match="now_ns must be >= 0, got -1"):
        lim.try_acquire_at(-1)
    with pytest.raises(TypeError):
        RateLimiter(3.5)


def test_config_builds_the_limiter_and_bad_backoff_is_named() -> None:
    assert RateLimiter().rates == [(200, 60.0)]
    cfg = config_from_dict({"execution": {"max_api_calls_per_minute": 120, "backoff": {"max_retries": 2}}})
    lim = RateLimiter(cfg)
    assert lim.rates == [(120, 60.0)]
    assert lim.backoff.max_retries == 2
    assert RateLimiter.from_config({"execution": {"max_api_calls_per_minute": 7}}).rates == [(7, 60.0)]
    assert RateLimiter(Config(), rates=[(5, 1.0)]).rates == [(5, 1.0)]
    with pytest.raises(ConfigError, match=r"execution\.backoff\.base_seconds"):
        config_from_dict({"execution": {"backoff": {"base_seconds": 0}}})
    with pytest.raises(ConfigError, match=r"execution\.max_api_calls_per_minute"):
        RateLimiter({"execution": {"max_api_calls_per_minute": 0}})
    assert BackoffConfig().retry_transient is False


def test_acquire_blocks_with_the_gil_released_and_honours_timeout() -> None:
    # The exact wait (~30 s) exceeds the timeout: refused at once rather than after sleeping. (A long
    # window: a loaded machine can stall this thread for longer than a short one between the calls.)
    slow = RateLimiter([(1, 30.0)])
    assert slow.acquire()
    assert slow.acquire(timeout=0.05) is False
    lim = RateLimiter([(1, 0.3)])
    first = time.monotonic_ns()  # taken before the first admission: the second one is >= 0.3 s after it
    assert lim.acquire()
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    t0 = time.monotonic_ns()
    before = ticks
    ok = lim.acquire(timeout=2.0)
    waited = time.monotonic_ns() - t0
    during = ticks - before
    done.set()
    counter.join()
    assert ok
    # It really waited for the window to slide: bounded from before the first admission, since a stall
    # of this thread between the two calls may have used up part of the window.
    assert t0 + waited - first >= 0.3 * NS
    assert during > 1000  # another Python thread ran meanwhile: the GIL was released
    assert lim.stats()["keys"]["default"]["admitted"] == 2
    assert slow.stats()["keys"]["default"] == {"admitted": 1, "rejected": 1, "admitted_weight": 1,
                                               "in_window": [1]}


def test_many_threads_blocking_acquire_all_admitted_within_the_rate() -> None:
    lim = RateLimiter([(4, 0.1)])
    stamps: list[int] = []
    guard = threading.Lock()

    def worker() -> None:
        for _ in range(3):
            assert lim.acquire(timeout=5.0)
            with guard:
                stamps.append(time.monotonic_ns())

    t0 = time.monotonic_ns()
    pool = [threading.Thread(target=worker) for _ in range(5)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert len(stamps) == 15
    # 15 admissions at 4 per 100 ms: the 13th cannot happen before 3 full windows have passed.
    assert sorted(stamps)[12] - t0 >= 0.3 * NS - 5_000_000
    assert lim.stats()["admitted"] == 15


def test_acquire_async_waits_on_the_loop_without_blocking_it() -> None:
    lim = RateLimiter([(3, 0.1)])

    async def main() -> tuple[list[bool], int, bool]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        tick_task = asyncio.create_task(ticker())
        results = await asyncio.gather(*(lim.acquire_async("q") for _ in range(9)))
        refused = await lim.acquire_async("q", timeout=0.01)
        stop.set()
        await tick_task
        return list(results), ticks, refused

    t0 = time.monotonic()
    results, ticks, refused = asyncio.run(main())
    assert results == [True] * 9
    assert refused is False
    assert time.monotonic() - t0 >= 0.2 - 0.005  # 9 at 3 per 100 ms needs two slides
    assert ticks >= 10  # the loop kept running while acquirers waited
