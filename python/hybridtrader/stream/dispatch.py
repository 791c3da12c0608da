"""Between the socket and the handlers: bounded queues with an explicit slow-consumer policy, handler
calls that survive a raising handler, and the latency record.

Policy: trade and bar batches are never dropped: when their queue is full the socket reader waits, so a
slow handler slows the read and TCP pushes back to the server (Alpaca answers a client that stays too
slow with error 407). Quote batches are superseded by newer quotes, so a full quote queue drops its
oldest batch and counts it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np

from hybridtrader.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[[Any], Any]


class DropOldestQueue(Generic[T]):
    """An asyncio queue that never blocks the producer: when full, the oldest item is discarded."""

    def __init__(self, maxsize: int) -> None:
        if maxsize <= 0:
            raise ConfigError(f"maxsize must be > 0, got {maxsize}")
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._ready = asyncio.Event()
        self.dropped = 0
        self.high_water = 0

    def put_nowait(self, item: T) -> None:
        if len(self._items) >= self._maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self.high_water = max(self.high_water, len(self._items))
        self._ready.set()

    async def get(self) -> T:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def get_nowait(self) -> T:
        return self._items.popleft()

    def qsize(self) -> int:
        return len(self._items)


class BlockingQueue(asyncio.Queue[T]):
    """asyncio.Queue recording its high-water mark and how often a producer had to wait."""

    def __init__(self, maxsize: int) -> None:
        if maxsize <= 0:
            raise ConfigError(f"maxsize must be > 0, got {maxsize}")
        super().__init__(maxsize)
        self.high_water = 0
        self.waits = 0
        self.dropped = 0  # always 0: this policy never drops

    async def put(self, item: T) -> None:
        if self.full():
            self.waits += 1
        await super().put(item)
        self.high_water = max(self.high_water, self.qsize())


class LatencyRecord:
    """The last `size` latencies in ns (a ring), for p50/p99."""

    def __init__(self, size: int) -> None:
        self._buf = np.zeros(size, dtype=np.int64)
        self._n = 0

    def add(self, ns: int) -> None:
        self._buf[self._n % self._buf.size] = ns
        self._n += 1

    def percentiles_us(self, qs: tuple[float, ...] = (50, 99)) -> list[float | None]:
        n = min(self._n, self._buf.size)
        if n == 0:
            return [None for _ in qs]
        return [float(v) / 1000.0 for v in np.percentile(self._buf[:n], qs)]

    def clear(self) -> None:
        self._n = 0


class Handlers:
    """Handlers of one event kind, called in registration order; sync or async."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._fns: list[tuple[Handler, bool]] = []
        self.errors = 0
        self.calls = 0

    def add(self, fn: Handler) -> Handler:
        if not callable(fn):
            raise ConfigError(f"on_{self.kind}: handler must be callable, got {fn!r}")
        self._fns.append((fn, inspect.iscoroutinefunction(fn)))
        return fn

    def __bool__(self) -> bool:
        return bool(self._fns)

    async def call(self, payload: Any) -> None:
        for fn, is_async in self._fns:
            self.calls += 1
            try:
                result = fn(payload)
                if is_async or inspect.isawaitable(result):
                    await result
            except Exception:
                self.errors += 1
                # The first failures with a traceback, then one line per hundredth, to keep logs readable.
                if self.errors <= 5 or self.errors % 100 == 0:
                    log.exception("on_%s handler %r raised (%d so far)", self.kind, fn, self.errors)


STOP = (None, 0)  # put last into a queue: its pump returns once everything before it was handled


async def pump(
    queue: Any,
    handlers: Handlers,
    latency: LatencyRecord | None,
    merge: Callable[[list[Any]], Any],
    max_batch: int = 256,
) -> None:
    """Hand (payload, recv_ns) items from `queue` to `handlers` until STOP. Whatever has queued up while the
    handlers were busy is merged into one call (up to `max_batch` items): one frame when the handlers keep
    up, fewer and larger calls instead of a growing backlog when they do not. `recv_ns` is when the frame
    came off the socket (perf_counter_ns): the recorded latency includes the wait in the queue."""
    perf = time.perf_counter_ns
    while True:
        items = [await queue.get()]
        while len(items) < max_batch and queue.qsize():
            items.append(queue.get_nowait())
        stop = items[-1][0] is None
        if stop:
            items.pop()
        if items:
            payload = merge([p for p, _ in items])
            if latency is not None:
                now = perf()
                for _, recv_ns in items:
                    latency.add(now - recv_ns)
            await handlers.call(payload)
        if stop:
            return
