"""Fault injection for the venue: rate-limit storms, 5xx answers, latency, dropped connections,
malformed stream frames, messages of unknown types and a provider's stream endpoint going down. Set from
the config (`venue.faults`), changed live with `Venue.set_faults(...)` or `POST /venue/faults`, or forced
for one REST request with query knobs (`fault=429|5xx|drop`, `latency_ms=N`), which the venue strips
before the endpoint sees the query.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from hybridtrader.config import FaultConfig
from hybridtrader.errors import DataError

QUERY_KNOBS = ("fault", "latency_ms")


@dataclass(frozen=True)
class HttpFault:
    kind: str  # "429" | "5xx" | "drop"
    status: int


class Faults:
    """The venue's live fault settings; bursts count down as requests consume them."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._apply(config or FaultConfig())

    def _apply(self, cfg: FaultConfig) -> None:
        self.config = cfg
        self._rng = random.Random(cfg.seed)
        self._left_429 = cfg.http_429_burst
        self._left_5xx = cfg.http_5xx_burst
        self._left_drop = cfg.http_drop_burst
        self._wait = cfg.burst_after

    def set(self, **changes: Any) -> FaultConfig:
        """Replace settings (validated like the config file); bursts restart from their new values."""
        with self._lock:
            cfg = FaultConfig.model_validate({**self.config.model_dump(), **changes})
            self._apply(cfg)
            return cfg

    def clear(self) -> None:
        with self._lock:
            self._apply(FaultConfig())

    def http(self, query: dict[str, str]) -> tuple[HttpFault | None, float]:
        """The fault (if any) and the added latency in seconds for one REST request."""
        with self._lock:
            latency = self.config.latency_ms / 1000.0
            if "latency_ms" in query:
                try:
                    latency = float(query["latency_ms"]) / 1000.0
                except ValueError:
                    raise DataError(f"latency_ms: not a number: {query['latency_ms']!r}") from None
            forced = query.get("fault")
            if forced is not None:
                if forced not in ("429", "5xx", "drop"):
                    raise DataError(f"fault: unknown {forced!r} (expected 429, 5xx or drop)")
                return HttpFault(forced, 429 if forced == "429" else self.config.http_5xx_status), latency
            if self._wait > 0:
                self._wait -= 1
            elif self._left_drop > 0:
                self._left_drop -= 1
                return HttpFault("drop", 0), latency
            elif self._left_429 > 0:
                self._left_429 -= 1
                return HttpFault("429", 429), latency
            elif self._left_5xx > 0:
                self._left_5xx -= 1
                return HttpFault("5xx", self.config.http_5xx_status), latency
            if self.config.http_error_rate > 0 and self._rng.random() < self.config.http_error_rate:
                return HttpFault("5xx", self.config.http_5xx_status), latency
            return None, latency

    def stream_frame(self, sent: int) -> str | None:
        """What to do before sending data frame number `sent` (0-based): None, "drop", "malformed" or
        "unknown" (the frame also carries a message of a type the provider never sends)."""
        cfg = self.config
        if cfg.stream_drop_after_frames is not None and sent >= cfg.stream_drop_after_frames:
            return "drop"
        if cfg.stream_malformed_every is not None and (sent + 1) % cfg.stream_malformed_every == 0:
            return "malformed"
        if cfg.stream_unknown_every is not None and (sent + 1) % cfg.stream_unknown_every == 0:
            return "unknown"
        return None

    def stream_down(self, provider: str) -> bool:
        """Whether `provider`'s stream endpoint ("alpaca" or "polygon") is down."""
        return provider in self.config.streams_down
