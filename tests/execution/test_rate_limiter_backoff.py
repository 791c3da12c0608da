"""Retries with backoff against a real HTTP server on a loopback socket, through requests, alpaca-py and
aiohttp; jitter bounds, give-up history, transient failures and batches."""

from __future__ import annotations

import asyncio
import email.utils
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import orjson
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockLatestTradeRequest
from hybridtrader import RateLimiter, RateLimitError
from hybridtrader.config import BackoffConfig
from hybridtrader.execution.rate_limiter import backoff_ceiling
from hypothesis import given, settings
from hypothesis import strategies as st

WALL = 1_700_000_000.0  # the injected wall clock (Unix seconds) that reset headers are relative to
TRADE = {
    "trades": {
        "AAPL": {"t": "2024-01-02T15:00:00Z", "x": "V", "p": 185.5, "s": 100, "c": ["@"], "i": 1, "z": "C"}
    }
}

Reply = tuple[int, dict[str, str], dict[str, Any]]


class ScriptedServer:
    """Answers each request with the next scripted reply (the last one repeats); optionally enforces a
    sliding-window rate itself and answers 429 past it, as Alpaca does."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[tuple[float, str]] = []
        self.server_limit: tuple[int, float] | None = None
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = owner.next_reply(self.path)
                payload = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def next_reply(self, path: str) -> Reply:
        with self.lock:
            now = time.monotonic()
            self.requests.append((now, path))
            if self.server_limit is not None:
                limit, window = self.server_limit
                recent = [t for t, _ in self.requests[:-1] if t > now - window]
                if len(recent) >= limit:
                    return (
                        429,
                        {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0"},
                        {"code": 42910000, "message": "rate limit exceeded"},
                    )
            if len(self.script) > 1:
                return self.script.pop(0)
            return self.script[0]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    yield s
    s.close()


def too_many(headers: dict[str, str] | None = None) -> Reply:
    return 429, headers or {}, {"code": 42910000, "message": "rate limit exceeded"}


def limiter(sleeps: list[float], **backoff: Any) -> RateLimiter:
    """A generous limiter whose backoff sleeps are recorded instead of slept."""
    return RateLimiter(
        rates=[(1000, 1.0)],
        backoff=BackoffConfig(**backoff),
        sleep=sleeps.append,
        wall_clock=lambda: WALL,
        rng=random.Random(7),
    )


def get_json(url: str) -> Any:
    r = requests.get(url, timeout=5)
    r.raise_for_status()
    return r.json()


def test_requests_429_reset_header_then_5xx_then_ok(server: ScriptedServer) -> None:
    server.script = [
        too_many({"X-RateLimit-Reset": str(int(WALL) + 3)}),
        too_many({"Retry-After": "2"}),
        too_many({"Retry-After": email.utils.formatdate(WALL + 5, usegmt=True)}),
        (503, {}, {"message": "busy"}),
        (200, {}, {"ok": 1}),
    ]
    sleeps: list[float] = []
    lim = limiter(sleeps, retry_transient=True)
    assert lim.execute_with_backoff(get_json, server.url + "/v2/x") == {"ok": 1}
    # Server-given waits exactly; the 5xx wait is jittered below base * 2**3.
    assert sleeps[:3] == [3.0, 2.0, 5.0]
    assert 0.0 <= sleeps[3] <= min(30.0, 0.5 * 2**3)
    assert len(server.requests) == 5
    stats = lim.stats()
    assert (stats["calls"], stats["rate_limited"], stats["transient_errors"], stats["retries"]) == (
        5,
        3,
        1,
        4,
    )
    assert stats["give_ups"] == 0


def test_transient_failures_propagate_unless_configured(server: ScriptedServer) -> None:
    server.script = [(503, {}, {"message": "busy"}), (200, {}, {"ok": 1})]
    sleeps: list[float] = []
    with pytest.raises(requests.HTTPError) as err:
        limiter(sleeps).execute_with_backoff(get_json, server.url + "/a")
    assert err.value.response.status_code == 503
    assert sleeps == [] and len(server.requests) == 1
    # Per-call override: retried, then the scripted 200.
    assert limiter(sleeps).call(get_json, (server.url + "/a",), retry_transient=True) == {"ok": 1}
    # Connection refused on a closed port is transient too.
    closed = ScriptedServer()
    closed.close()
    with pytest.raises(RateLimitError) as gave_up:
        limiter(sleeps, max_retries=2).call(get_json, (closed.url + "/a",), retry_transient=True)
    assert isinstance(gave_up.value.__cause__, requests.ConnectionError)


def test_other_errors_are_not_retried(server: ScriptedServer) -> None:
    server.script = [(404, {}, {"message": "no such thing"})]
    sleeps: list[float] = []
    with pytest.raises(requests.HTTPError):
        limiter(sleeps, retry_transient=True).execute_with_backoff(get_json, server.url + "/missing")
    assert sleeps == [] and len(server.requests) == 1


def test_give_up_carries_the_attempt_history(server: ScriptedServer) -> None:
    server.script = [too_many()]
    sleeps: list[float] = []
    lim = limiter(sleeps, max_retries=3, base_seconds=1.0, cap_seconds=3.0)
    with pytest.raises(RateLimitError) as err:
        lim.execute_with_backoff(get_json, server.url + "/always-429")
    history = err.value.history
    assert [a.number for a in history] == [1, 2, 3, 4]
    assert all(a.status == 429 and isinstance(a.error, requests.HTTPError) for a in history)
    assert [a.source for a in history[:3]] == ["backoff"] * 3
    assert history[3].source == "gave up: max_retries=3 reached" and history[3].wait == 0.0
    assert [a.wait for a in history[:3]] == sleeps
    # Full jitter with the same seeded generator: uniform in [0, min(cap, base * 2**n)].
    rng = random.Random(7)
    assert sleeps == [rng.uniform(0.0, min(3.0, 1.0 * 2**n)) for n in range(3)]
    assert isinstance(err.value.__cause__, requests.HTTPError)
    assert lim.stats()["give_ups"] == 1 and len(server.requests) == 4


def test_gives_up_rather_than_wait_past_max_elapsed(server: ScriptedServer) -> None:
    server.script = [too_many({"Retry-After": "600"}), (200, {}, {"ok": 1})]
    sleeps: list[float] = []
    with pytest.raises(RateLimitError, match=r"max_elapsed_seconds=60\.0") as err:
        limiter(sleeps, max_elapsed_seconds=60.0).execute_with_backoff(get_json, server.url + "/slow")
    assert sleeps == [] and len(err.value.history) == 1


@settings(max_examples=60, deadline=None)
@given(
    base=st.floats(0.001, 10.0),
    cap=st.floats(0.001, 60.0),
    retries=st.integers(1, 12),
    seed=st.integers(0, 2**32),
)
def test_jitter_stays_within_the_full_jitter_bounds(base: float, cap: float, retries: int, seed: int) -> None:
    sleeps: list[float] = []
    policy = BackoffConfig(base_seconds=base, cap_seconds=cap, max_retries=retries, max_elapsed_seconds=1e9)
    lim = RateLimiter(rates=[(1000, 1.0)], backoff=policy, sleep=sleeps.append, rng=random.Random(seed))

    def refused() -> None:
        raise RateLimitError("local signal")

    with pytest.raises(RateLimitError):
        lim.execute_with_backoff(refused)
    assert len(sleeps) == retries
    for n, wait in enumerate(sleeps):
        assert 0.0 <= wait <= min(cap, base * 2**n) == backoff_ceiling(policy, n)


def test_our_rate_limit_error_with_retry_after_is_honoured() -> None:
    sleeps: list[float] = []
    answers = iter([RateLimitError("slow down", retry_after=1.25), None])

    def call() -> str:
        exc = next(answers)
        if exc is not None:
            raise exc
        return "done"

    assert limiter(sleeps).execute_with_backoff(call) == "done"
    assert sleeps == [1.25]


def test_alpaca_client_429_is_retried_with_the_reset_header(server: ScriptedServer) -> None:
    server.script = [too_many({"X-RateLimit-Reset": str(int(WALL) + 4)}), (200, {}, TRADE)]
    client = StockHistoricalDataClient("key", "secret", url_override=server.url)
    # alpaca-py retries 429 itself with fixed 3 s sleeps ignoring the headers; with zero retries left it
    # raises APIError at once and our limiter decides the wait.
    client._retry = 0
    sleeps: list[float] = []
    trades = limiter(sleeps).execute_with_backoff(
        client.get_stock_latest_trade, StockLatestTradeRequest(symbol_or_symbols="AAPL")
    )
    assert trades["AAPL"].price == 185.5
    assert sleeps == [4.0]
    assert [p.split("?")[0] for _, p in server.requests] == ["/v2/stocks/trades/latest"] * 2

    server.script = [too_many({"X-RateLimit-Reset": str(int(WALL) + 9)})]
    with pytest.raises(RateLimitError) as err:
        limiter(sleeps, max_retries=0).execute_with_backoff(
            client.get_stock_latest_trade, StockLatestTradeRequest(symbol_or_symbols="AAPL")
        )
    cause = err.value.__cause__
    assert isinstance(cause, APIError) and cause.status_code == 429
    assert cause.response.headers["X-RateLimit-Reset"] == str(int(WALL) + 9)


def test_limiter_in_front_keeps_alpaca_clear_of_429s(server: ScriptedServer) -> None:
    """The server enforces 5 requests per 0.1 s; the limiter (its window 0.4 s wider to absorb the
    scheduling delays between admission and arrival that a loaded machine adds) keeps alpaca-py's own
    retry, left on here, from being needed."""
    server.script = [(200, {}, TRADE)]
    server.server_limit = (5, 0.1)
    client = StockHistoricalDataClient("key", "secret", url_override=server.url)
    lim = RateLimiter(rates=[(5, 0.5)])
    req = StockLatestTradeRequest(symbol_or_symbols="AAPL")
    got = lim.execute_batch(client.get_stock_latest_trade, [req] * 12, workers=3)
    assert got.ok and all(r["AAPL"].price == 185.5 for r in got.results)
    assert len(server.requests) == 12  # no 429, so no retried request
    assert lim.stats()["rate_limited"] == 0


def test_execute_batch_keeps_every_result_and_error_in_order(server: ScriptedServer) -> None:
    server.script = [(200, {}, {"ok": 1})]
    sleeps: list[float] = []
    lim = limiter(sleeps, max_retries=2)
    flaky = {5: 1}

    def fetch(i: int) -> int:
        if i in (3, 7):
            raise ValueError(f"bad item {i}")
        if flaky.get(i, 0) > 0:
            flaky[i] -= 1
            raise RateLimitError("once", retry_after=0.5)
        if i == 9:
            raise RateLimitError("always")
        return get_json(f"{server.url}/item/{i}")["ok"] * 10 + i

    for workers in (1, 4):
        flaky[5] = 1
        got = lim.execute_batch(fetch, range(10), workers=workers)
        assert not got.ok and got.failed == [3, 7, 9]
        assert [r for i, r in enumerate(got.results) if i not in (3, 7, 9)] == [10, 11, 12, 14, 15, 16, 18]
        assert isinstance(got.errors[3], ValueError) and str(got.errors[3]) == "bad item 3"
        assert isinstance(got.errors[9], RateLimitError) and len(got.errors[9].history) == 3
    assert lim.execute_batch(fetch, [0, 1]).ok
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        lim.execute_batch(fetch, [0], workers=0)


def test_async_twin_with_aiohttp(server: ScriptedServer) -> None:
    server.script = [
        too_many({"X-RateLimit-Reset": str(int(WALL) + 2)}),
        (502, {}, {"message": "bad gateway"}),
        (200, {}, {"ok": 1}),
    ]
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    lim = RateLimiter(
        rates=[(1000, 1.0)],
        backoff=BackoffConfig(retry_transient=True),
        async_sleep=record,
        wall_clock=lambda: WALL,
    )

    async def main() -> Any:
        async with aiohttp.ClientSession() as session:

            async def fetch(path: str) -> Any:
                async with session.get(server.url + path) as resp:
                    resp.raise_for_status()
                    return await resp.json()

            return await lim.execute_with_backoff_async(fetch, "/v2/async")

    assert asyncio.run(main()) == {"ok": 1}
    assert slept[0] == 2.0 and 0.0 <= slept[1] <= 1.0
    assert lim.stats()["calls"] == 3


def test_a_server_pause_holds_other_callers_on_the_key(server: ScriptedServer) -> None:
    """One caller's 429 with Retry-After pauses the key: a second caller starting during the pause waits
    until it ends instead of hitting the server again (real sleeps, short)."""
    server.script = [too_many({"Retry-After": "0.4"}), (200, {}, {"ok": 1})]
    lim = RateLimiter(rates=[(1000, 1.0)])
    first = threading.Thread(target=lim.execute_with_backoff, args=(get_json, server.url + "/p1"))
    first.start()
    while lim.stats()["retries"] == 0:  # the first caller has had its 429 and set the pause
        time.sleep(0.002)
    assert lim.execute_with_backoff(get_json, server.url + "/p2") == {"ok": 1}
    first.join()
    t429 = server.requests[0][0]
    later = [t for t, _ in server.requests[1:]]
    assert len(later) == 2 and min(later) - t429 >= 0.4 - 0.01


def test_gives_up_when_the_local_limiter_would_hold_past_max_elapsed() -> None:
    lim = RateLimiter(rates=[(1, 60.0)], backoff=BackoffConfig(max_elapsed_seconds=1.0))
    assert lim.execute_with_backoff(lambda: "first") == "first"
    assert 59.0 < lim.wait_time() <= 60.0
    with pytest.raises(RateLimitError, match="local limiter would hold key 'default'"):
        lim.execute_with_backoff(lambda: "second")
    with pytest.raises(RateLimitError, match="local limiter would hold key 'default'"):
        asyncio.run(lim.execute_with_backoff_async(lambda: "second"))
    stats = lim.stats()
    assert (stats["calls"], stats["give_ups"]) == (1, 2)
