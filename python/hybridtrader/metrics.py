"""A small thread-safe metrics registry: named counters (API calls, 429s, retries, cache hits/misses...)
with optional labels, read as a snapshot by the monitoring layer and `hybridtrader health`."""

from __future__ import annotations

import threading
from collections import defaultdict

from hybridtrader.errors import ConfigError

Labels = tuple[tuple[str, str], ...]


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, Labels], float] = defaultdict(float)

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        if value < 0:
            raise ConfigError(f"value: counters only go up, got {value}")
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counters[key] += value

    def get(self, name: str, **labels: str) -> float:
        """A counter's value; without labels, the sum over every label set of that name."""
        with self._lock:
            if labels:
                return self._counters.get((name, tuple(sorted(labels.items()))), 0.0)
            return sum(v for (n, _), v in self._counters.items() if n == name)

    def snapshot(self) -> dict[str, float]:
        """Every counter as `name{k=v,...}` -> value."""
        with self._lock:
            items = list(self._counters.items())
        out = {}
        for (name, labels), v in sorted(items):
            tag = ",".join(f"{k}={val}" for k, val in labels)
            out[f"{name}{{{tag}}}" if tag else name] = v
        return out

    def since(self, before: dict[str, float]) -> dict[str, float]:
        """The counters that moved since `before` (an earlier `snapshot()`), by how much: what one piece of
        work did, even when the process has counted other work before."""
        return {k: v - before.get(k, 0.0) for k, v in self.snapshot().items() if v != before.get(k, 0.0)}


# The process-wide registry; components take a `metrics=` argument defaulting to it.
METRICS = Metrics()
