"""Rate limiting for broker and data API calls.

`RateLimiter` is the Rust sliding-window limiter (`_core.SlidingWindowLimiter`: exact windows over one or
more rates, per key, with weights) plus what a caller of an HTTP API needs around it: construction from the
config, an asyncio `acquire_async`, and retries with backoff when the server still answers "429 Too Many
Requests" (`execute_with_backoff`, its async twin, and `execute_batch`).

A rate-limit answer is recognised by its HTTP status wherever the client library keeps it: alpaca-py's
`APIError.status_code` (headers in `.response.headers`), `requests.HTTPError.response`, aiohttp's
`ClientResponseError.status`/`.headers`, or our own `RateLimitError` (with an optional `retry_after`).
The wait honours `X-RateLimit-Reset` (Unix seconds, Alpaca) and `Retry-After` (seconds or an HTTP date);
without them it is exponential backoff with full jitter, uniform in [0, min(cap, base * 2**retry)].
A server-given wait also pauses the key for every caller of this limiter, so parallel workers do not keep
hitting the server while it is refusing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests

from hybridtrader._core import SlidingWindowLimiter
from hybridtrader.config import BackoffConfig, Config, ExecutionConfig, config_section
from hybridtrader.errors import BrokerError, ConfigError

T = TypeVar("T")

DEFAULT_KEY = "default"
TOO_MANY_REQUESTS = 429
# Failures worth retrying when `retry_transient` is on (plus any 5xx answer).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    requests.Timeout,
    requests.ConnectionError,
)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One failed call: its number (1-based), the error, the HTTP status if any, the wait chosen before the
    next try (0.0 on the last) and where the wait came from, and seconds since the first try."""

    number: int
    error: BaseException
    status: int | None
    wait: float
    source: str  # "x-ratelimit-reset", "retry-after", "backoff" or "gave up: <why>"
    elapsed: float


class RateLimitError(BrokerError):
    """A call was refused for rate limiting and retrying gave up (`history` lists every attempt); raised
    by callers too, to signal a rate-limit answer (`retry_after` seconds when known)."""

    def __init__(
        self,
        message: str = "rate limited",
        *,
        retry_after: float | None = None,
        history: Sequence[Attempt] = (),
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.history: tuple[Attempt, ...] = tuple(history)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Per-item outcome of `execute_batch`, in input order: `results[i]` is None where `errors[i]` is set."""

    results: list[Any]
    errors: list[BaseException | None]

    @property
    def ok(self) -> bool:
        return all(e is None for e in self.errors)

    @property
    def failed(self) -> list[int]:
        return [i for i, e in enumerate(self.errors) if e is not None]


# ------------------------------------------------------------------------------ classifying answers
def http_status(exc: BaseException) -> int | None:
    """The HTTP status carried by an exception from alpaca-py, requests, aiohttp or similar clients."""
    for obj in (exc, getattr(exc, "response", None)):
        for attr in ("status_code", "status"):
            value = getattr(obj, attr, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
    return None


def _headers(exc: BaseException) -> Mapping[str, str]:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        headers = getattr(exc, "headers", None)
    if headers is None:
        return {}
    # requests/aiohttp headers are case-insensitive already; a plain mapping is normalised here.
    return {str(k).lower(): str(v) for k, v in headers.items()}


def server_wait(exc: BaseException, wall_now: float) -> tuple[float, str] | None:
    """Seconds the server asked us to wait (the longest of its hints) and which hint it was, or None."""
    if isinstance(exc, RateLimitError) and exc.retry_after is not None and exc.retry_after > 0:
        return exc.retry_after, "retry-after"
    headers = _headers(exc)
    hints: list[tuple[float, str]] = []
    reset = headers.get("x-ratelimit-reset")
    if reset is not None:
        with contextlib.suppress(ValueError):
            hints.append((float(reset) - wall_now, "x-ratelimit-reset"))
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        try:
            hints.append((float(retry_after), "retry-after"))
        except ValueError:
            with contextlib.suppress(TypeError, ValueError):
                hints.append((parsedate_to_datetime(retry_after).timestamp() - wall_now, "retry-after"))
    # A reset already in the past says nothing useful: fall back to backoff.
    hints = [h for h in hints if h[0] > 0]
    return max(hints) if hints else None


def is_rate_limited(exc: BaseException) -> bool:
    return isinstance(exc, RateLimitError) or http_status(exc) == TOO_MANY_REQUESTS


def is_transient(exc: BaseException) -> bool:
    status = http_status(exc)
    return isinstance(exc, TRANSIENT_ERRORS) or (status is not None and 500 <= status <= 599)


def backoff_ceiling(policy: BackoffConfig, retry: int) -> float:
    """Upper bound of the jittered wait before retry number `retry` (0-based)."""
    return min(policy.cap_seconds, policy.base_seconds * 2.0 ** min(retry, 64))


# --------------------------------------------------------------------------------------- retrying
class _Retry:
    """The retry decisions of one `execute_with_backoff` call, shared by the sync and async loops."""

    def __init__(self, limiter: RateLimiter, key: str, retry_transient: bool) -> None:
        self.limiter = limiter
        self.key = key
        self.retry_transient = retry_transient
        self.policy = limiter.backoff
        self.started = time.monotonic()
        self.history: list[Attempt] = []
        self.token = object()  # identifies this call's own pause without keeping its errors alive

    def remaining(self) -> float:
        return self.policy.max_elapsed_seconds - (time.monotonic() - self.started)

    def give_up(self, why: str, cause: BaseException | None = None) -> RateLimitError:
        self.limiter._count("give_ups")
        if cause is not None:
            self.history.append(
                Attempt(
                    len(self.history) + 1,
                    cause,
                    http_status(cause),
                    0.0,
                    f"gave up: {why}",
                    time.monotonic() - self.started,
                )
            )
        last = f"; last error: {cause!r}" if cause is not None else ""
        return RateLimitError(
            f"gave up after {len(self.history)} attempt(s): {why}{last}", history=self.history
        )

    def wait_after(self, exc: Exception) -> float:
        """The wait before the next try, or raise: the error itself when it is not retryable, or a
        `RateLimitError` with the history when retries or time are used up."""
        limited = is_rate_limited(exc)
        if limited:
            self.limiter._count("rate_limited")
        elif is_transient(exc):
            self.limiter._count("transient_errors")
            if not self.retry_transient:
                raise exc
        else:
            raise exc
        retry = len(self.history)
        if retry >= self.policy.max_retries:
            raise self.give_up(f"max_retries={self.policy.max_retries} reached", exc) from exc
        hint = server_wait(exc, self.limiter._wall_clock()) if limited else None
        if hint is not None:
            wait, source = hint
            self.limiter._pause(self, wait)
        else:
            wait, source = self.limiter._rng.uniform(0.0, backoff_ceiling(self.policy, retry)), "backoff"
        elapsed = time.monotonic() - self.started
        if elapsed + wait > self.policy.max_elapsed_seconds:
            why = f"waiting {wait:.3f} s would pass max_elapsed_seconds={self.policy.max_elapsed_seconds}"
            raise self.give_up(why, exc) from exc
        self.history.append(Attempt(retry + 1, exc, http_status(exc), wait, source, elapsed))
        self.limiter._count("retries")
        return wait


# ------------------------------------------------------------------------------------- the limiter
def _resolve(config: object) -> tuple[list[tuple[int, float]] | None, ExecutionConfig]:
    """Rates (when given directly) and the execution section from whatever the caller passed."""
    if isinstance(config, Sequence) and not isinstance(config, str | bytes):
        return [tuple(r) for r in config], ExecutionConfig()  # type: ignore[misc]
    return None, config_section(config, "execution")  # type: ignore[arg-type]


class RateLimiter(SlidingWindowLimiter):
    """Sliding-window rate limiter with retries on rate-limit answers.

    `RateLimiter(config)` limits to `execution.max_api_calls_per_minute` per 60 s and retries per
    `execution.backoff`; `RateLimiter([(200, 60.0), (10, 1.0)])` takes the rates directly. `rates=` and
    `backoff=` override either. `sleep`, `async_sleep`, `wall_clock` (Unix seconds, for X-RateLimit-Reset)
    and `rng` (jitter) can be injected; the limiter's own waits always use the monotonic clock.
    """

    def __new__(cls, config: object = None, **kwargs: Any) -> RateLimiter:
        rates, execution = _resolve(config)
        if kwargs.get("rates") is not None:
            rates = list(kwargs["rates"])
        if rates is None:
            rates = [(execution.max_api_calls_per_minute, 60.0)]
        limiter = super().__new__(cls, rates)
        limiter._execution = execution  # read by __init__ (the config is resolved once)
        return limiter

    def __init__(
        self,
        config: object = None,
        *,
        rates: Sequence[tuple[int, float]] | None = None,
        backoff: BackoffConfig | None = None,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._execution: ExecutionConfig
        self.backoff: BackoffConfig = backoff if backoff is not None else self._execution.backoff
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._wall_clock = wall_clock
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()
        self._counters = dict.fromkeys(
            ("calls", "rate_limited", "transient_errors", "retries", "give_ups"), 0
        )
        self._paused: dict[str, tuple[float, object]] = {}  # key -> (monotonic end, the call that set it)

    @classmethod
    def from_config(cls, config: Config | ExecutionConfig | Mapping[str, Any] | None = None) -> RateLimiter:
        return cls(config)

    def __repr__(self) -> str:
        return f"RateLimiter({self.rates!r})"

    # -------------------------------------------------------------------------------- bookkeeping
    def _count(self, name: str) -> None:
        with self._lock:
            self._counters[name] += 1

    def _pause(self, state: _Retry, seconds: float) -> None:
        """Hold every call on the key of `state` for `seconds`, unless a longer pause is already set."""
        until = time.monotonic() + seconds
        with self._lock:
            current = self._paused.get(state.key)
            if current is None or until > current[0]:
                self._paused[state.key] = (until, state.token)

    def _pause_left(self, state: _Retry) -> float:
        """Seconds the call must still hold for a server-given pause on its key. A pause the call set
        itself is covered by its own backoff sleep."""
        with self._lock:
            current = self._paused.get(state.key)
        if current is None or current[1] is state.token:
            return 0.0
        return current[0] - time.monotonic()

    def stats(self) -> dict[str, Any]:
        """Limiter counters (admitted, rejected, per key) plus the call counters: calls, rate_limited,
        transient_errors, retries, give_ups."""
        out: dict[str, Any] = super().stats()
        with self._lock:
            out.update(self._counters)
        return out

    # ------------------------------------------------------------------------------------- async
    async def acquire_async(
        self, key: str = DEFAULT_KEY, weight: int = 1, timeout: float | None = None
    ) -> bool:
        """`acquire` for asyncio: sleeps the exact wait on the event loop instead of blocking a thread."""
        if timeout is not None and not (timeout >= 0 and timeout != float("inf")):
            raise ConfigError(f"timeout must be None or a finite number of seconds >= 0, got {timeout}")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            wait = self.poll(key, weight)
            if wait == 0.0:
                return True
            if deadline is not None and loop.time() + wait > deadline:
                return False
            await asyncio.sleep(wait)

    # ---------------------------------------------------------------------------------- retrying
    def execute_with_backoff(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call `fn(*args, **kwargs)` under the limiter (key "default", weight 1), retrying per the
        backoff config. See `call` for the key, weight and transient-failure options."""
        return self.call(fn, args, kwargs)

    async def execute_with_backoff_async(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Async twin of `execute_with_backoff`; `fn` may be a coroutine function or a plain callable."""
        return await self.call_async(fn, args, kwargs)

    def call(
        self,
        fn: Callable[..., T],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        key: str = DEFAULT_KEY,
        weight: int = 1,
        retry_transient: bool | None = None,
    ) -> T:
        """Acquire `weight` on `key` before each try of `fn(*args, **kwargs)`; on a rate-limit answer wait as
        the server says (or back off with jitter) and retry; transient failures (timeouts, connection
        errors, 5xx) are retried only if `retry_transient` (default: the config's). Any other error
        propagates at once; when retries or `max_elapsed_seconds` run out, `RateLimitError` with the
        attempt history is raised from the last error."""
        state = _Retry(
            self, key, self.backoff.retry_transient if retry_transient is None else retry_transient
        )
        kwargs = kwargs or {}
        while True:
            paused = self._pause_left(state)
            if paused > 0:
                self._sleep(paused)
            if not self.acquire(key, weight, timeout=max(state.remaining(), 0.0)):
                raise state.give_up(f"the local limiter would hold key {key!r} past max_elapsed_seconds")
            self._count("calls")
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                self._sleep(state.wait_after(exc))

    async def call_async(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        key: str = DEFAULT_KEY,
        weight: int = 1,
        retry_transient: bool | None = None,
    ) -> Any:
        """Async twin of `call`."""
        state = _Retry(
            self, key, self.backoff.retry_transient if retry_transient is None else retry_transient
        )
        kwargs = kwargs or {}
        while True:
            paused = self._pause_left(state)
            if paused > 0:
                await self._async_sleep(paused)
            if not await self.acquire_async(key, weight, timeout=max(state.remaining(), 0.0)):
                raise state.give_up(f"the local limiter would hold key {key!r} past max_elapsed_seconds")
            self._count("calls")
            try:
                result = fn(*args, **kwargs)
                return await result if inspect.isawaitable(result) else result
            except Exception as exc:
                await self._async_sleep(state.wait_after(exc))

    def execute_batch(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        *,
        workers: int = 1,
        key: str = DEFAULT_KEY,
        weight: int = 1,
        retry_transient: bool | None = None,
    ) -> BatchResult:
        """Run `fn(item)` for every item under the limiter with retries (`call`), on up to `workers`
        threads. Every item gets its result or its error, in input order; one failure never stops the rest."""
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")

        def one(item: Any) -> tuple[Any, Exception | None]:
            try:
                return self.call(fn, (item,), key=key, weight=weight, retry_transient=retry_transient), None
            except Exception as exc:
                return None, exc

        items = list(items)
        if workers == 1 or len(items) <= 1:
            outcomes = [one(item) for item in items]
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
                outcomes = list(pool.map(one, items))
        return BatchResult([r for r, _ in outcomes], [e for _, e in outcomes])
