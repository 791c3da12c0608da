"""API keys the venue accepts and the per-key request budget (a sliding one-minute window, as Alpaca
counts its 200 requests/min), with the X-RateLimit-* headers Alpaca sends."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from hybridtrader.credentials import LOCAL_FINNHUB_TOKEN, LOCAL_KEY, LOCAL_SECRET
from hybridtrader.errors import DataError

__all__ = ["LOCAL_FINNHUB_TOKEN", "LOCAL_KEY", "LOCAL_SECRET", "KeyRing", "WindowLimiter"]


class KeyRing:
    def __init__(self, keys: dict[str, str] | None = None) -> None:
        self.keys = dict(keys or {LOCAL_KEY: LOCAL_SECRET})

    def check(self, key: str | None, secret: str | None) -> bool:
        return key is not None and secret is not None and self.keys.get(key) == secret


class WindowLimiter:
    """At most `limit` requests per key in any `window_s` seconds."""

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        if limit <= 0:
            raise DataError(f"limit: must be > 0, got {limit}")
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> tuple[bool, dict[str, str]]:
        """Count one request; returns (allowed, X-RateLimit-* headers)."""
        now = time.time()
        with self._lock:
            q = self._hits.setdefault(key, deque())
            while q and q[0] <= now - self.window_s:
                q.popleft()
            allowed = len(q) < self.limit
            if allowed:
                q.append(now)
            reset = q[0] + self.window_s if q else now
            headers = {
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.limit - len(q)),
                "X-RateLimit-Reset": str(math.ceil(reset)),
            }
            return allowed, headers
