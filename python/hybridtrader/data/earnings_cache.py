"""Earnings blackout from the Finnhub earnings calendar, TTL-cached on disk.

A report moves the stock in the first session that trades on it: the report day for before-open (`bmo`),
during-hours (`dmh`) or unspecified timing, the next session for after-close (`amc`). A symbol is blacked
out from `blackout_sessions_before` sessions before that session through `blackout_sessions_after`
sessions after it. Without a Finnhub key (config `finnhub.api_key` or `FINNHUB_API_KEY`) against the real
service the feature is disabled with a warning; the local venue takes its fixed token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

from hybridtrader.config import Config
from hybridtrader.credentials import finnhub_token
from hybridtrader.data.ttl_cache import TTLCache
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.market import calendar
from hybridtrader.market.schema import normalize_symbols
from hybridtrader.metrics import METRICS, Metrics

log = logging.getLogger(__name__)
FINNHUB_PER_MINUTE = 60


def event_session(report: date, hour: str) -> date:
    """The first session that trades on a report published on `report` at `hour`."""
    if hour == "amc":
        return calendar.next_session(report)
    return report if calendar.is_session(report) else calendar.next_session(report)


def shift_sessions(d: date, n: int) -> date:
    for _ in range(abs(n)):
        d = calendar.next_session(d) if n > 0 else calendar.previous_session(d)
    return d


class EarningsBlackout:
    def __init__(
        self,
        config: Config | None = None,
        *,
        finnhub_url: str | None = None,
        window: tuple[date, date] | None = None,
        path: str | Path | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics = METRICS,
    ) -> None:
        cfg = config or Config()
        f = cfg.finnhub
        self.before = cfg.data.blackout_sessions_before
        self.after = cfg.data.blackout_sessions_after
        self.metrics = metrics
        self.url = (finnhub_url or f.url or "").rstrip("/")
        self.token = finnhub_token(cfg, self.url)
        self.enabled = bool(self.url and self.token)
        if not self.enabled:
            why = "no FINNHUB_API_KEY" if self.url else "no Finnhub URL (and no local venue given)"
            log.warning("earnings blackout disabled: %s", why)
        today = date.today()
        self.window = window or (today - timedelta(days=120), today + timedelta(days=120))
        self.limiter = limiter if limiter is not None else RateLimiter([(FINNHUB_PER_MINUTE, 60.0)])
        self.session = requests.Session()
        self.cache = TTLCache("earnings", path or Path(cfg.data_dir) / "cache" / "earnings.json",
                              cfg.data.earnings_ttl_s, self._load, clock=clock, metrics=metrics)

    def _load(self, symbols: list[str]) -> dict[str, Any]:
        lo, hi = self.window

        def call() -> dict[str, Any]:
            self.metrics.inc("api_calls", endpoint="finnhub_earnings")
            r = self.session.get(f"{self.url}/calendar/earnings",
                                 params={"from": lo.isoformat(), "to": hi.isoformat()},
                                 headers={"X-Finnhub-Token": self.token or ""}, timeout=30)
            if r.status_code == 429:
                self.metrics.inc("rate_limited", endpoint="finnhub_earnings")
            r.raise_for_status()
            return r.json()

        # The token travels in a header (Finnhub accepts both), so no URL in an error or log carries it.
        body = self.limiter.call(call, (), retry_transient=True)
        out: dict[str, list[dict[str, str]]] = {s: [] for s in symbols}
        for e in body.get("earningsCalendar") or []:
            if e.get("symbol") in out:
                out[e["symbol"]].append({"date": e["date"], "hour": e.get("hour") or ""})
        return out

    def prefetch(self, symbols: list[str]) -> None:
        """Load every expired or unknown symbol of `symbols` in one calendar request."""
        if self.enabled:
            self.cache.get_many(normalize_symbols(symbols))

    def reports(self, symbol: str) -> list[tuple[date, str]]:
        """(report date, hour) of `symbol` within the window, from the cache."""
        if not self.enabled:
            return []
        (sym,) = normalize_symbols([symbol])
        return [(date.fromisoformat(e["date"]), e["hour"]) for e in self.cache.get(sym)]

    def blackout_ranges(self, symbol: str) -> list[tuple[date, date]]:
        """Inclusive session ranges during which `symbol` is blacked out."""
        out = []
        for d, hour in self.reports(symbol):
            e = event_session(d, hour)
            out.append((shift_sessions(e, -self.before), shift_sessions(e, self.after)))
        return out

    def is_blacked_out(self, symbol: str, day: date) -> bool:
        """True when `day` falls in a blackout of `symbol` (always False when the feature is disabled)."""
        return any(a <= day <= b for a, b in self.blackout_ranges(symbol))
