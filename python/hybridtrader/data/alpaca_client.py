"""Historical bars from Alpaca (or the local venue) on alpaca-py, returned as Polars frames.

alpaca-py's `get_stock_bars` follows `next_page_token` itself inside one call, so a failure on page 40
loses pages 1-39 and a server that repeats a token loops forever. We therefore page ourselves on
alpaca-py's REST client (`StockHistoricalDataClient`: its session, base URL, auth headers, and its
`APIError` for error answers, carrying status and headers for the rate limiter), one page per call, every
call under the `RateLimiter` with backoff. Pages are decoded with orjson: alpaca-py's stdlib JSON decode
would be half the time of a fetch.

- a long range is split into time chunks of about `data.chunk_bars` bars;
- a chunk whose page fails after the limiter's retries restarts from the last bar received (that symbol
  from just after its last bar, the later symbols from the chunk start), up to `data.max_resumes` times;
  after that `BarsFetchError` carries every bar fetched so far (`.partial`);
- a repeated page token, or more than `data.max_pages` pages in one chunk, is a `PaginationError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from operator import itemgetter
from typing import Any

import orjson
import polars as pl
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from requests import HTTPError

from hybridtrader.config import Config
from hybridtrader.data.schema import BAR_SCHEMA, empty_bars, normalize_symbols, rfc3339, to_utc
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.market.timeframe import Timeframe
from hybridtrader.monitoring.metrics import METRICS, Metrics
from hybridtrader.venue.auth import LOCAL_KEY, LOCAL_SECRET

log = logging.getLogger(__name__)

_WIRE = (("o", "open"), ("h", "high"), ("l", "low"), ("c", "close"), ("v", "volume"), ("vw", "vwap"),
         ("n", "trades"))
_KEYS = ("t", *(w for w, _ in _WIRE))
_BAR_T = "%Y-%m-%dT%H:%M:%SZ"
_ONE_NS = timedelta(microseconds=1)  # Alpaca times are RFC 3339 with microseconds at most


class PaginationError(RuntimeError):
    """The server's paging does not terminate (a repeated token or too many pages)."""


class BarsFetchError(RuntimeError):
    """Fetching failed for good; `partial` holds every bar fetched before the failure (bar schema)."""

    def __init__(self, message: str, partial: pl.DataFrame) -> None:
        super().__init__(message)
        self.partial = partial


def chunk_ranges(start: datetime, end: datetime, tf: Timeframe, n_symbols: int,
                 chunk_bars: int) -> list[tuple[datetime, datetime]]:
    """[start, end] cut into consecutive inclusive windows of about `chunk_bars` bars over all symbols."""
    if end < start:
        raise ValueError(f"end: {end.isoformat()} is before start {start.isoformat()}")
    sessions_per_chunk = chunk_bars / (max(1, n_symbols) * tf.bars_per_session)
    span = max(timedelta(days=1), timedelta(days=sessions_per_chunk * 365.25 / 252))
    out = []
    lo = start
    while lo <= end:
        hi = min(end, lo + span - _ONE_NS)
        out.append((lo, hi))
        lo = hi + _ONE_NS
    return out


@dataclass
class _Segment:
    symbols: list[str]
    start: datetime
    end: datetime


class _Columns:
    """Bars of wire pages accumulated as columns (cheaper than a frame per page)."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {k: [] for k in ("symbol", *_KEYS)}

    def add(self, page: dict[str, list[dict[str, Any]]]) -> tuple[str, str] | None:
        """Adds one page; returns the (symbol, time) of its last bar, or None when empty."""
        last = None
        cols = self.cols
        for sym, rows in page.items():
            if not rows:
                continue
            cols["symbol"].extend([sym] * len(rows))
            for w in _KEYS:
                cols[w].extend(map(itemgetter(w), rows))
            last = (sym, rows[-1]["t"])
        return last

    def frame(self) -> pl.DataFrame:
        c = self.cols
        if not c["symbol"]:
            return empty_bars()
        schema = {"symbol": pl.String, "ts": pl.String, **{n: BAR_SCHEMA[n] for _, n in _WIRE}}
        df = pl.DataFrame({"symbol": c["symbol"], "ts": c["t"], **{name: c[w] for w, name in _WIRE}},
                          schema=schema)
        # Alpaca writes bar times as whole seconds with Z; anything else falls back to inference.
        fast = pl.col("ts").str.to_datetime(_BAR_T, time_unit="ns", time_zone="UTC", strict=False)
        df = df.with_columns(fast.alias("_t"))
        if df["_t"].null_count():
            inferred = pl.col("ts").str.to_datetime(time_unit="ns", time_zone="UTC")
            df = df.with_columns(pl.coalesce("_t", inferred))
        return df.drop("ts").rename({"_t": "ts"}).select(list(BAR_SCHEMA))


class AlpacaClient:
    """Alpaca historical data on alpaca-py; `get_bars` is the seed's entry point.

    The base URL is `data_url`, else `alpaca.data_url` from the config (a local venue's `.url` in tests).
    Keys come from the config; without them the local venue's fixed keys are sent.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        data_url: str | None = None,
        limiter: RateLimiter | None = None,
        metrics: Metrics = METRICS,
    ) -> None:
        cfg = config or Config()
        url = data_url or cfg.alpaca.data_url
        if not url:
            raise ValueError("alpaca.data_url: not set (start the local venue with `hybridtrader venue` "
                             "and set its URL, or pass data_url=)")
        a = cfg.alpaca
        key = a.api_key.get_secret_value() if a.api_key else LOCAL_KEY
        secret = a.secret_key.get_secret_value() if a.secret_key else LOCAL_SECRET
        self.url = url.rstrip("/")
        self.data = cfg.data
        self.feed = "iex" if a.feed == "test" else a.feed
        self.metrics = metrics
        self.limiter = limiter if limiter is not None else RateLimiter(cfg)
        self.rest = StockHistoricalDataClient(key, secret, url_override=self.url)
        self._bars_url = f"{self.url}/{self.rest._api_version}/stocks/bars"
        self._headers = self.rest._get_default_headers()

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        """One GET like alpaca-py's `_one_request`, without its fixed-sleep retries (the limiter retries,
        honouring X-RateLimit-Reset) and with orjson decoding."""
        r = self.rest._session.get(self._bars_url, params=params, headers=self._headers,
                                   allow_redirects=False)
        try:
            r.raise_for_status()
        except HTTPError as e:
            raise APIError(r.text, e) from None
        return orjson.loads(r.content)

    # ------------------------------------------------------------------------------- one call
    def _request(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page request: the single place every HTTP call of this client goes through."""

        def attempt() -> dict[str, Any]:
            self.metrics.inc("api_calls", endpoint="bars")
            try:
                return self._get(params)
            except Exception as e:
                status = getattr(e, "status_code", None)
                self.metrics.inc("api_errors", endpoint="bars", status=str(status))
                if status == 429:
                    self.metrics.inc("rate_limited", endpoint="bars")
                raise

        before = self.limiter.stats().get("retries", 0)
        try:
            return self.limiter.call(attempt, (), retry_transient=True)
        finally:
            retried = self.limiter.stats().get("retries", 0) - before
            if retried > 0:
                self.metrics.inc("retries", retried, endpoint="bars")

    # ------------------------------------------------------------------------------ get_bars
    def get_bars(
        self,
        symbols: str | Iterable[str],
        timeframe: str | Any,
        start: datetime | date | str,
        end: datetime | date | str,
        *,
        adjustment: str = "raw",
        on_chunk: Callable[[int, int, pl.DataFrame], None] | None = None,
    ) -> pl.DataFrame:
        """Bars of `symbols` in [start, end] (inclusive, UTC) sorted by symbol then time (bar schema).

        `timeframe` is text (`1Min`, `1Day`...) or an alpaca-py `TimeFrame`. `on_chunk(i, n, bars)` is
        called after each chunk (progress, incremental storage)."""
        syms = normalize_symbols(symbols)
        tf = Timeframe.parse(str(getattr(timeframe, "value", timeframe)))
        lo, hi = to_utc("start", start), to_utc("end", end)
        chunks = chunk_ranges(lo, hi, tf, len(syms), self.data.chunk_bars)
        frames: list[pl.DataFrame] = []
        for i, (a, b) in enumerate(chunks):
            try:
                bars = self.fetch_chunk(syms, tf, a, b, adjustment=adjustment)
            except BarsFetchError as e:
                partial = pl.concat([*frames, e.partial]) if frames else e.partial
                raise BarsFetchError(f"chunk {i + 1}/{len(chunks)} ({rfc3339(a)}..{rfc3339(b)}): {e}",
                                     partial) from e.__cause__
            frames.append(bars)
            if on_chunk is not None:
                on_chunk(i, len(chunks), bars)
        if len(frames) == 1:  # pages come sorted by symbol then time; chunks do not overlap
            return frames[0]
        return pl.concat(frames).sort("symbol", "ts") if frames else empty_bars()

    def fetch_chunk(self, symbols: list[str], tf: Timeframe, start: datetime, end: datetime, *,
                    adjustment: str = "raw") -> pl.DataFrame:
        """All pages of one time window, resuming from the last bar after a failed page."""
        acc = _Columns()
        queue = [_Segment(symbols, start, end)]
        resumes = 0
        while queue:
            seg = queue.pop(0)
            try:
                self._pages(seg, tf, adjustment, acc)
            except PaginationError:
                raise
            except Exception as e:
                last = getattr(e, "last_bar", None)
                if resumes >= self.data.max_resumes:
                    raise BarsFetchError(
                        f"gave up after {resumes} resume(s) of {','.join(seg.symbols)}: {e}", acc.frame()
                    ) from e
                resumes += 1
                self.metrics.inc("resumes", endpoint="bars")
                log.warning("bars page failed (%s); resuming from %s", e, last or "the segment start")
                queue[:0] = self._resume(seg, last)
        return acc.frame()

    @staticmethod
    def _resume(seg: _Segment, last: tuple[str, str] | None) -> list[_Segment]:
        if last is None:
            return [seg]
        sym, t = last
        after = datetime.fromisoformat(t.replace("Z", "+00:00")) + _ONE_NS
        later = [s for s in seg.symbols if s > sym]
        out = [_Segment([sym], after, seg.end)] if after <= seg.end else []
        if later:
            out.append(_Segment(later, seg.start, seg.end))
        return out

    def _pages(self, seg: _Segment, tf: Timeframe, adjustment: str, acc: _Columns) -> None:
        params: dict[str, Any] = {
            "symbols": ",".join(seg.symbols), "timeframe": tf.value, "start": rfc3339(seg.start),
            "end": rfc3339(seg.end), "limit": self.data.page_limit, "feed": self.feed,
            "adjustment": adjustment, "sort": "asc",
        }
        seen: set[str] = set()
        pages = 0
        last: tuple[str, str] | None = None
        while True:
            if pages >= self.data.max_pages:
                raise PaginationError(
                    f"more than data.max_pages={self.data.max_pages} pages for {params['symbols']} "
                    f"{params['start']}..{params['end']}; stopping instead of looping")
            try:
                page = self._request(params)
            except Exception as e:
                e.last_bar = last  # type: ignore[attr-defined]
                raise
            pages += 1
            got = acc.add(page.get("bars") or {})
            last = got or last
            token = page.get("next_page_token")
            if not token:
                return
            if token in seen:
                raise PaginationError(
                    f"page token {token!r} repeated after {pages} pages for {params['symbols']} "
                    f"{params['start']}..{params['end']}; the server is looping")
            seen.add(token)
            params["page_token"] = token
