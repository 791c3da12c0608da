"""Earnings blackout from the Finnhub earnings calendar, TTL-cached on disk.

A report moves the stock in the first session that trades on it: the report day for before-open (`bmo`),
during-hours (`dmh`) or unspecified timing, the next session for after-close (`amc`). A symbol is blacked
out from `blackout_sessions_before` sessions before that session through `blackout_sessions_after`
sessions after it. Without a Finnhub key (config `finnhub.api_key` or `FINNHUB_API_KEY`) against the real
service the feature is disabled with a warning; the local venue takes its fixed token.

A symbol's dates expire after `data.earnings_ttl_s`, possibly while a session trades on them. Asking then
refreshes them; when that fails, the dates fetched before are used (stale) with one alert (`on_stale`) and
a new refresh is tried at most every `retry_s` until one succeeds. A symbol never fetched has no dates to
fall back on: it is treated as blacked out (no entries) while the calendar cannot be reached.
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
from hybridtrader.data.ttl_cache import CacheRefreshError, TTLCache
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
        on_stale: Callable[[str], None] | None = None,
        retry_s: float = 60.0,
    ) -> None:
        """`on_stale(message)`: told once when a refresh fails and stale dates are used (the module
        documentation); `retry_s`: seconds (of `clock`) between refresh attempts meanwhile."""
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
        self.clock, self.on_stale, self.retry_s = clock, on_stale, retry_s
        # when the last refresh failed and how (None: it succeeded)
        self._failed: tuple[float, CacheRefreshError] | None = None
        self._told = False  # on_stale was told since the last successful refresh

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
        """Load every expired or unknown symbol of `symbols` in one calendar request; CacheRefreshError
        when it fails (and `reports` then waits `retry_s` before trying again)."""
        if not self.enabled:
            return
        try:
            self.cache.get_many(normalize_symbols(symbols))
        except CacheRefreshError as e:
            self._failed = (self.clock(), e)
            raise
        self._failed, self._told = None, False

    def reports(self, symbol: str) -> list[tuple[date, str]]:
        """(report date, hour) of `symbol` within the window, from the cache: refreshed when expired, stale
        when the refresh fails; CacheRefreshError only for a symbol never fetched."""
        if not self.enabled:
            return []
        (sym,) = normalize_symbols([symbol])
        return [(date.fromisoformat(e["date"]), e["hour"]) for e in self._entries(sym)]

    def _entries(self, sym: str) -> list[dict[str, str]]:
        old = self.cache.entries.get(sym)
        if self._failed is not None and self.clock() - self._failed[0] < self.retry_s:
            if old is None:  # the calendar failed a moment ago: no new try yet
                raise self._failed[1]
            return old[1]
        try:
            value = self.cache.get(sym)
        except CacheRefreshError as e:
            self._failed = (self.clock(), e)
            if old is None:
                self._tell(f"earnings calendar: {e}; {sym} was never fetched: blacked out until it is")
                raise
            self._tell(f"earnings calendar: {e}; using the dates fetched {self.clock() - old[0]:.0f} s ago "
                       f"(stale) until a refresh succeeds (tried every {self.retry_s:g} s)")
            return old[1]
        self._failed, self._told = None, False
        return value

    def _tell(self, message: str) -> None:
        """Say (once per run of failed refreshes) that the dates in use are not fresh."""
        if self._told:
            return
        self._told = True
        log.warning("%s", message)
        if self.on_stale is not None:
            self.on_stale(message)

    def blackout_ranges(self, symbol: str) -> list[tuple[date, date]]:
        """Inclusive session ranges during which `symbol` is blacked out."""
        out = []
        for d, hour in self.reports(symbol):
            e = event_session(d, hour)
            out.append((shift_sessions(e, -self.before), shift_sessions(e, self.after)))
        return out

    def is_blacked_out(self, symbol: str, day: date) -> bool:
        """True when `day` falls in a blackout of `symbol` (always False when the feature is disabled), or
        when `symbol`'s dates were never fetched and the calendar cannot be reached now."""
        try:
            return any(a <= day <= b for a, b in self.blackout_ranges(symbol))
        except CacheRefreshError:
            return True
