"""Shortability of assets (`shortable`, `easy_to_borrow`) from the Alpaca trading API, TTL-cached on disk.

Expired or unknown symbols are reloaded in one `GET /v2/assets` call (through the rate limiter); a
failed reload raises `CacheRefreshError` instead of serving an answer older than the TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alpaca.trading.client import TradingClient

from hybridtrader.config import Config
from hybridtrader.credentials import alpaca_keys
from hybridtrader.data.ttl_cache import TTLCache
from hybridtrader.errors import DataError
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.market.schema import normalize_symbols
from hybridtrader.metrics import METRICS, Metrics


@dataclass(frozen=True)
class Shortability:
    shortable: bool
    easy_to_borrow: bool


def trading_client(config: Config, trading_url: str | None = None) -> TradingClient:
    """alpaca-py's TradingClient for the configured (or given) URL; local venue keys when none are set."""
    a = config.alpaca
    url = trading_url or a.trading_url
    if not url:
        raise DataError("alpaca.trading_url: not set (start the local venue and pass its URL)")
    key, secret = alpaca_keys(config, url)
    client = TradingClient(key, secret, paper=a.paper, url_override=url.rstrip("/"))
    client._retry_codes = []  # the rate limiter retries, honouring the server's reset time
    return client


class ShortabilityCache:
    def __init__(
        self,
        config: Config | None = None,
        *,
        trading_url: str | None = None,
        path: str | Path | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics = METRICS,
    ) -> None:
        cfg = config or Config()
        self.client = trading_client(cfg, trading_url)
        self.limiter = limiter if limiter is not None else RateLimiter(cfg)
        self.metrics = metrics
        self.cache = TTLCache("shortability", path or Path(cfg.data_dir) / "cache" / "shortability.json",
                              cfg.data.shortability_ttl_s, self._load, clock=clock, metrics=metrics)

    def _load(self, symbols: list[str]) -> dict[str, Any]:
        def call() -> list[Any]:
            self.metrics.inc("api_calls", endpoint="assets")
            return self.client.get_all_assets()

        assets = self.limiter.call(call, (), retry_transient=True)
        wanted = set(symbols)
        return {a.symbol: {"shortable": bool(a.shortable), "easy_to_borrow": bool(a.easy_to_borrow)}
                for a in assets if a.symbol in wanted}

    def get(self, symbol: str) -> Shortability:
        return self.get_many([symbol])[symbol.strip().upper()]

    def get_many(self, symbols: Iterable[str]) -> dict[str, Shortability]:
        found = self.cache.get_many(normalize_symbols(list(symbols)))
        return {k: Shortability(**v) for k, v in found.items()}

    def is_shortable(self, symbol: str, *, require_easy_to_borrow: bool = False) -> bool:
        s = self.get(symbol)
        return s.shortable and (s.easy_to_borrow or not require_easy_to_borrow)
