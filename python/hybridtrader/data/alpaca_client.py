"""Historical bars, trades and quotes from Alpaca (or the local venue) on alpaca-py, as Polars frames.

alpaca-py's `get_stock_bars` follows `next_page_token` itself inside one call, so a failure on page 40
loses pages 1-39 and a server that repeats a token loops forever. We therefore page ourselves on
alpaca-py's REST client (`StockHistoricalDataClient`: its session, base URL, auth headers, and its
`APIError` for error answers, carrying status and headers for the rate limiter), one page per call, every
call under the `RateLimiter` with backoff. Pages are decoded with orjson: alpaca-py's stdlib JSON decode
would be half the time of a fetch.

- a long range of bars is split into time chunks of about `data.chunk_bars` bars;
- a window whose page fails after the limiter's retries restarts from the last row received (that symbol
  from the microsecond of its last row, skipping the rows from there it already has, so ticks sharing a
  timestamp are neither lost nor doubled; the later symbols from the window start), up to
  `data.max_resumes` times; after that `FetchError` carries every row fetched so far (`.partial`);
- a repeated page token, or more than `data.max_pages` pages in one chunk, is a `PaginationError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import polars as pl
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from requests import HTTPError

from hybridtrader.config import Config
from hybridtrader.credentials import AUTH_FAILURES, alpaca_keys, auth_hint
from hybridtrader.errors import BrokerError, DataError
from hybridtrader.execution.rate_limiter import RateLimiter, http_status
from hybridtrader.market.schema import BAR_SCHEMA, QUOTE_SCHEMA, TRADE_SCHEMA, empty_bars, normalize_symbols
from hybridtrader.market.timeconv import rfc3339, to_utc, utc_ns
from hybridtrader.market.timeframe import Timeframe
from hybridtrader.metrics import METRICS, Metrics

log = logging.getLogger(__name__)

_TICK_T = "%Y-%m-%dT%H:%M:%S%.fZ"
_ONE_US = timedelta(microseconds=1)  # request times carry microseconds


@dataclass(frozen=True)
class _Kind:
    """One historical endpoint: its name (path and page key), wire keys -> columns, schema, time format."""

    name: str
    wire: tuple[tuple[str, str], ...]
    schema: dict[str, pl.DataType]
    time_format: str


BARS = _Kind("bars", (("o", "open"), ("h", "high"), ("l", "low"), ("c", "close"), ("v", "volume"),
                      ("vw", "vwap"), ("n", "trades")), BAR_SCHEMA, "%Y-%m-%dT%H:%M:%SZ")
TRADES = _Kind("trades", (("p", "price"), ("s", "size")), TRADE_SCHEMA, _TICK_T)
QUOTES = _Kind("quotes", (("bp", "bid"), ("ap", "ask"), ("bs", "bid_size"), ("as", "ask_size")),
               QUOTE_SCHEMA, _TICK_T)


class PaginationError(BrokerError):
    """The server's paging does not terminate (a repeated token or too many pages)."""


class FetchError(BrokerError):
    """Fetching failed for good; `partial` holds every row fetched before the failure (the kind's schema)."""

    def __init__(self, message: str, partial: pl.DataFrame) -> None:
        super().__init__(message)
        self.partial = partial


def chunk_ranges(start: datetime, end: datetime, tf: Timeframe, n_symbols: int,
                 chunk_bars: int) -> list[tuple[datetime, datetime]]:
    """[start, end] cut into consecutive inclusive windows of about `chunk_bars` bars over all symbols."""
    if end < start:
        raise DataError(f"end: {end.isoformat()} is before start {start.isoformat()}")
    sessions_per_chunk = chunk_bars / (max(1, n_symbols) * tf.bars_per_session)
    span = max(timedelta(days=1), timedelta(days=sessions_per_chunk * 365.25 / 252))
    out = []
    lo = start
    while lo <= end:
        hi = min(end, lo + span - _ONE_US)
        out.append((lo, hi))
        lo = hi + _ONE_US
    return out


@dataclass
class _Segment:
    symbols: list[str]
    start: datetime
    end: datetime
    skip: int = 0  # rows of symbols[0] from `start` on that were received before a resume


class _Columns:
    """Rows of wire pages accumulated as columns (cheaper than a frame per page)."""

    def __init__(self, kind: _Kind) -> None:
        self.kind = kind
        self.cols: dict[str, list[Any]] = {k: [] for k in ("symbol", "t", *(w for w, _ in kind.wire))}

    def add(self, page: dict[str, list[dict[str, Any]]], skip: int = 0) -> tuple[tuple[str, str] | None, int]:
        """Adds one page, less the first `skip` rows of its first symbol; returns the (symbol, time) of its
        last row (None when it added none) and how many rows are still to skip."""
        last = None
        cols = self.cols
        for sym, rows in page.items():
            if skip:
                dropped = min(skip, len(rows))
                rows, skip = rows[dropped:], skip - dropped
            if not rows:
                continue
            cols["symbol"].extend([sym] * len(rows))
            for w in cols:
                if w != "symbol":
                    cols[w].extend(map(itemgetter(w), rows))
            last = (sym, rows[-1]["t"])
        return last, skip

    def received_since(self, symbol: str, start_ns: int) -> int:
        """Rows of `symbol` at or after `start_ns` at the end of what was received (its rows come last)."""
        sym, t = self.cols["symbol"], self.cols["t"]
        n, i = 0, len(sym) - 1
        while i >= 0 and sym[i] == symbol and _wire_ns(t[i]) >= start_ns:
            n += 1
            i -= 1
        return n

    def frame(self) -> pl.DataFrame:
        c, kind = self.cols, self.kind
        if not c["symbol"]:
            return pl.DataFrame(schema=kind.schema)
        schema = {"symbol": pl.String, "ts": pl.String, **{n: kind.schema[n] for _, n in kind.wire}}
        df = pl.DataFrame({"symbol": c["symbol"], "ts": c["t"], **{name: c[w] for w, name in kind.wire}},
                          schema=schema)
        # Alpaca's usual time format first; anything else falls back to inference.
        fast = pl.col("ts").str.to_datetime(kind.time_format, time_unit="ns", time_zone="UTC", strict=False)
        df = df.with_columns(fast.alias("_t"))
        if df["_t"].null_count():
            inferred = pl.col("ts").str.to_datetime(time_unit="ns", time_zone="UTC")
            df = df.with_columns(pl.coalesce("_t", inferred))
        return df.drop("ts").rename({"_t": "ts"}).select(list(kind.schema))


def _wire_ns(text: str) -> int:
    """Epoch ns of a wire time: "2024-01-02T14:30:00.123456789Z" exactly, an offset form to the us."""
    if text.endswith("Z"):
        return int(np.datetime64(text[:-1], "ns").astype(np.int64))
    return utc_ns(datetime.fromisoformat(text))


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
            raise DataError("alpaca.data_url: not set (start the local venue with `hybridtrader venue` "
                             "and set its URL, or pass data_url=)")
        self.url = url.rstrip("/")
        key, secret = alpaca_keys(cfg, self.url)
        self.data = cfg.data
        self.feed = "iex" if cfg.alpaca.feed == "test" else cfg.alpaca.feed
        self.metrics = metrics
        self.limiter = limiter if limiter is not None else RateLimiter(cfg)
        self.rest = StockHistoricalDataClient(key, secret, url_override=self.url)
        self._base = f"{self.url}/{self.rest._api_version}/stocks"
        self._headers = self.rest._get_default_headers()

    def _get(self, kind: _Kind, params: dict[str, Any]) -> dict[str, Any]:
        """One GET like alpaca-py's `_one_request`, without its fixed-sleep retries (the limiter retries,
        honouring X-RateLimit-Reset) and with orjson decoding."""
        r = self.rest._session.get(f"{self._base}/{kind.name}", params=params, headers=self._headers,
                                   allow_redirects=False)
        try:
            r.raise_for_status()
        except HTTPError as e:
            raise APIError(r.text, e) from None
        return orjson.loads(r.content)

    # ------------------------------------------------------------------------------- one call
    def _request(self, kind: _Kind, params: dict[str, Any]) -> dict[str, Any]:
        """One page request: the single place every HTTP call of this client goes through."""
        endpoint = kind.name

        def attempt() -> dict[str, Any]:
            self.metrics.inc("api_calls", endpoint=endpoint)
            try:
                return self._get(kind, params)
            except Exception as e:
                status = getattr(e, "status_code", None)
                self.metrics.inc("api_errors", endpoint=endpoint, status=str(status))
                if status == 429:
                    self.metrics.inc("rate_limited", endpoint=endpoint)
                raise

        before = self.limiter.stats().get("retries", 0)
        try:
            return self.limiter.call(attempt, (), retry_transient=True)
        finally:
            retried = self.limiter.stats().get("retries", 0) - before
            if retried > 0:
                self.metrics.inc("retries", retried, endpoint=endpoint)

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
            except FetchError as e:
                partial = pl.concat([*frames, e.partial]) if frames else e.partial
                raise FetchError(f"chunk {i + 1}/{len(chunks)} ({rfc3339(a)}..{rfc3339(b)}): {e}",
                                 partial) from e.__cause__
            frames.append(bars)
            if on_chunk is not None:
                on_chunk(i, len(chunks), bars)
        if len(frames) == 1:  # pages come sorted by symbol then time; chunks do not overlap
            return frames[0]
        return pl.concat(frames).sort("symbol", "ts") if frames else empty_bars()

    def fetch_chunk(self, symbols: list[str], tf: Timeframe, start: datetime, end: datetime, *,
                    adjustment: str = "raw") -> pl.DataFrame:
        """All bar pages of one time window, resuming from the last bar after a failed page."""
        return self._fetch(BARS, symbols, start, end, {"timeframe": tf.value, "adjustment": adjustment})

    # ----------------------------------------------------------------------- trades and quotes
    def get_trades(self, symbols: str | Iterable[str], start: datetime | date | str,
                   end: datetime | date | str) -> pl.DataFrame:
        """Trades (symbol, ts, price, size) of `symbols` in [start, end] (inclusive, UTC), sorted by symbol
        then time, ticks with equal times in the server's order."""
        return self._fetch(TRADES, normalize_symbols(symbols), to_utc("start", start), to_utc("end", end), {})

    def get_quotes(self, symbols: str | Iterable[str], start: datetime | date | str,
                   end: datetime | date | str) -> pl.DataFrame:
        """Quotes (symbol, ts, bid, ask, bid_size, ask_size) of `symbols` in [start, end] (inclusive, UTC),
        sorted by symbol then time."""
        return self._fetch(QUOTES, normalize_symbols(symbols), to_utc("start", start), to_utc("end", end), {})

    # ------------------------------------------------------------------------------- paging
    def _fetch(self, kind: _Kind, symbols: list[str], start: datetime, end: datetime,
               extra: dict[str, Any]) -> pl.DataFrame:
        """All pages of one window, resuming from the last row after a failed page."""
        if end < start:
            raise DataError(f"end: {end.isoformat()} is before start {start.isoformat()}")
        acc = _Columns(kind)
        queue = [_Segment(symbols, start, end)]
        resumes = 0
        while queue:
            seg = queue.pop(0)
            try:
                self._pages(kind, seg, extra, acc)
            except PaginationError:
                raise
            except Exception as e:
                if http_status(e) in AUTH_FAILURES:  # other keys are needed: resuming cannot help
                    raise BrokerError(
                        f"{self.url} refused the keys (HTTP {http_status(e)}): {auth_hint(self.url)}"
                    ) from None
                last = getattr(e, "last_row", None)
                if resumes >= self.data.max_resumes:
                    raise FetchError(
                        f"{kind.name}: gave up after {resumes} resume(s) of {','.join(seg.symbols)}: {e}",
                        acc.frame(),
                    ) from e
                resumes += 1
                self.metrics.inc("resumes", endpoint=kind.name)
                log.warning("%s page failed (%s); resuming from %s", kind.name, e,
                            last or "the segment start")
                queue[:0] = self._resume(seg, last, acc)
        return acc.frame()

    @staticmethod
    def _resume(seg: _Segment, last: tuple[str, str] | None, acc: _Columns) -> list[_Segment]:
        """The rest of a failed segment: its last symbol from the microsecond of its last row (requests
        carry microseconds), skipping the rows from there already received; then the later symbols."""
        if last is None:
            return [seg]
        sym, t = last
        at = datetime.fromisoformat(t)  # to the microsecond: further digits are dropped
        out = [_Segment([sym], at, seg.end, acc.received_since(sym, utc_ns(at)))]
        later = [s for s in seg.symbols if s > sym]
        if later:
            out.append(_Segment(later, seg.start, seg.end))
        return out

    def _pages(self, kind: _Kind, seg: _Segment, extra: dict[str, Any], acc: _Columns) -> None:
        params: dict[str, Any] = {
            "symbols": ",".join(seg.symbols), "start": rfc3339(seg.start), "end": rfc3339(seg.end),
            "limit": self.data.page_limit, "feed": self.feed, "sort": "asc", **extra,
        }
        seen: set[str] = set()
        pages = 0
        last: tuple[str, str] | None = None
        skip = seg.skip
        while True:
            if pages >= self.data.max_pages:
                raise PaginationError(
                    f"more than data.max_pages={self.data.max_pages} pages of {kind.name} for "
                    f"{params['symbols']} {params['start']}..{params['end']}; stopping instead of looping")
            try:
                page = self._request(kind, params)
            except Exception as e:
                e.last_row = last  # type: ignore[attr-defined]
                raise
            pages += 1
            got, skip = acc.add(page.get(kind.name) or {}, skip)
            last = got or last
            token = page.get("next_page_token")
            if not token:
                return
            if token in seen:
                raise PaginationError(
                    f"page token {token!r} repeated after {pages} pages of {kind.name} for "
                    f"{params['symbols']} {params['start']}..{params['end']}; the server is looping")
            seen.add(token)
            params["page_token"] = token
