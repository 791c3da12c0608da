"""Alpaca Market Data v2 historical endpoints: `GET /v2/stocks/{bars,trades,quotes}`.

Paging as Alpaca pages: `limit` (1..10000, default 1000) counts items across all symbols, results are
sorted by symbol and then by time (`sort=asc|desc`), and `next_page_token` resumes exactly where the page
stopped. The token names a symbol and a row, so trades sharing a timestamp are never skipped or repeated.
An empty answer is `{"bars": {}, "next_page_token": null}` (alpaca-py fails on `null`). `start` and `end`
are inclusive. By default the whole recorded market is served (history is the archive; the clock drives
the streams and the broker); with `venue.history_until_clock` only what the replay clock has passed is
(ticks up to now, bars whose interval has ended), as a live service would answer.
"""

from __future__ import annotations

import base64
import binascii
import threading

import numpy as np
import orjson
import polars as pl
from aiohttp import web

from hybridtrader.errors import DataError
from hybridtrader.market.timeconv import to_utc, utc_ns
from hybridtrader.market.timeframe import Timeframe
from hybridtrader.venue.faults import Faults
from hybridtrader.venue.market import ReplayMarket, Series
from hybridtrader.venue.replay import ReplayClock

FEEDS = ("iex", "sip", "delayed_sip", "otc", "boats", "overnight")
ADJUSTMENTS = ("raw", "split", "dividend", "spin-off", "all")
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1000
_BAR_T = "%Y-%m-%dT%H:%M:%SZ"
_TICK_T = "%Y-%m-%dT%H:%M:%S%.9fZ"


class ApiError(Exception):
    """An error answer in Alpaca's shape: HTTP status plus `{"code": ..., "message": ...}`."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        body = orjson.dumps({"code": self.code, "message": self.message})
        return web.Response(status=self.status, body=body, content_type="application/json", headers=headers)


def invalid(message: str) -> ApiError:
    return ApiError(422, 42210000, message)


def parse_time(name: str, text: str) -> int:
    """RFC 3339 (`Z` or an offset; naive means UTC) or `YYYY-MM-DD` -> UTC epoch ns."""
    try:
        return utc_ns(to_utc(name, text))
    except DataError:
        raise invalid(f"invalid {name}: {text!r} is not RFC 3339") from None


def _encode_token(symbol: str, row: int) -> str:
    return base64.urlsafe_b64encode(f"{symbol}\x1f{row}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        symbol, row = raw.split("\x1f")
        return symbol, int(row)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid(f"invalid page_token: {token!r}") from None


class WireFrames:
    """Each series rendered once into Alpaca's field names (`t` as text), so a page is a slice."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[object, pl.DataFrame] = {}

    def get(self, key: object, series: Series, kind: str) -> pl.DataFrame:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = _wire(series.frame, kind)
            return self._cache[key]


def _wire(frame: pl.DataFrame, kind: str) -> pl.DataFrame:
    if kind == "bars":
        return frame.select(
            pl.col("ts").dt.strftime(_BAR_T).alias("t"),
            pl.col("open").alias("o"), pl.col("high").alias("h"), pl.col("low").alias("l"),
            pl.col("close").alias("c"), pl.col("volume").alias("v"), pl.col("trades").alias("n"),
            pl.col("vwap").alias("vw"),
        )
    if kind == "trades":
        return frame.select(
            pl.col("ts").dt.strftime(_TICK_T).alias("t"),
            pl.lit("V").alias("x"), pl.col("price").alias("p"), pl.col("size").alias("s"),
            pl.lit(["@"]).alias("c"), (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("i"),
            pl.lit("C").alias("z"),
        )
    return frame.select(
        pl.col("ts").dt.strftime(_TICK_T).alias("t"),
        pl.lit("V").alias("ax"), pl.col("ask").alias("ap"), pl.col("ask_size").alias("as"),
        pl.lit("V").alias("bx"), pl.col("bid").alias("bp"), pl.col("bid_size").alias("bs"),
        pl.lit(["R"]).alias("c"), pl.lit("C").alias("z"),
    )


def _page(
    series: Series, symbols: list[str], start: int, end: int, limit: int, desc: bool,
    token: tuple[str, int] | None,
) -> tuple[list[tuple[str, int, int]], str | None]:
    """Rows [a, b) per symbol for one page, and the next page token."""
    picks: list[tuple[str, int, int]] = []
    left = limit
    for s in symbols:
        if token is not None and s < token[0]:
            continue
        rng = series.ranges.get(s)
        if rng is None:
            continue
        lo, hi = rng
        ts = series.ts[lo:hi]
        a = lo + int(np.searchsorted(ts, start, side="left"))
        b = lo + int(np.searchsorted(ts, end, side="right"))
        if token is not None and s == token[0]:
            if desc:
                b = min(b, token[1] + 1)
            else:
                a = max(a, token[1])
        if a >= b:
            continue
        if left == 0:  # the page is full and this symbol still has rows: it starts the next page
            return picks, _encode_token(s, b - 1 if desc else a)
        take = min(b - a, left)
        if desc:
            picks.append((s, b - take, b))
            rest = (s, b - take - 1) if take < b - a else None
        else:
            picks.append((s, a, a + take))
            rest = (s, a + take) if take < b - a else None
        left -= take
        if rest is not None:
            return picks, _encode_token(*rest)
    return picks, None


class MarketDataApi:
    """Handlers of the historical endpoints over one replayed market."""

    def __init__(self, market: ReplayMarket, faults: Faults, clock: ReplayClock | None = None) -> None:
        self.market = market
        self.faults = faults
        self.clock = clock  # set: nothing later than the clock's now is served
        self.wire = WireFrames()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v2/stocks/bars", self.bars),
            web.get("/v2/stocks/trades", self.trades),
            web.get("/v2/stocks/quotes", self.quotes),
        ]

    async def bars(self, request: web.Request) -> web.Response:
        tf_text = request.query.get("timeframe")
        if not tf_text:
            raise invalid("timeframe is required")
        try:
            tf = Timeframe.parse(tf_text)
        except ValueError:
            raise invalid(f"invalid timeframe: {tf_text!r}") from None
        series = self.market.bars(tf)
        return self._answer(request, "bars", series, self.wire.get(("bars", tf), series, "bars"),
                            tf.nominal_ns)

    async def trades(self, request: web.Request) -> web.Response:
        s = self.market.trades
        return self._answer(request, "trades", s, self.wire.get("trades", s, "trades"))

    async def quotes(self, request: web.Request) -> web.Response:
        s = self.market.quotes
        return self._answer(request, "quotes", s, self.wire.get("quotes", s, "quotes"))

    def _answer(self, request: web.Request, key: str, series: Series, wire: pl.DataFrame,
                span_ns: int = 0) -> web.Response:
        q = request.query
        raw_symbols = q.get("symbols", "")
        symbols = sorted({s.strip().upper() for s in raw_symbols.split(",") if s.strip()})
        if not symbols:
            raise invalid("symbols is required")
        start = parse_time("start", q["start"]) if q.get("start") else int(series.ts.min(initial=0))
        end = parse_time("end", q["end"]) if q.get("end") else int(series.ts.max(initial=0))
        if self.clock is not None:  # a bar is history once its interval has ended
            end = min(end, self.clock.now_ns() - span_ns)
        try:
            limit = int(q.get("limit") or DEFAULT_LIMIT)
        except ValueError:
            raise invalid(f"invalid limit: {q.get('limit')!r}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid(f"invalid limit: {limit} (must be 1..{MAX_LIMIT})")
        sort = q.get("sort", "asc")
        if sort not in ("asc", "desc"):
            raise invalid(f"invalid sort: {sort!r} (asc or desc)")
        if q.get("feed", "iex") not in FEEDS:
            raise invalid(f"invalid feed: {q.get('feed')!r}")
        if q.get("adjustment", "raw") not in ADJUSTMENTS:
            raise invalid(f"invalid adjustment: {q.get('adjustment')!r}")
        if q.get("currency", "USD") != "USD":
            raise invalid(f"invalid currency: {q.get('currency')!r} (this venue quotes USD only)")
        token = _decode_token(q["page_token"]) if q.get("page_token") else None
        picks, next_token = _page(series, symbols, start, end, limit, sort == "desc", token)
        if self.faults.config.loop_page_token and q.get("page_token"):
            next_token = q["page_token"]  # a broken server: the same token forever
        parts = []
        for sym, a, b in picks:
            rows = wire.slice(a, b - a)
            if sort == "desc":
                rows = rows.reverse()
            parts.append(f"{orjson.dumps(sym).decode()}:{rows.write_json()}")
        body = f'{{"{key}":{{{",".join(parts)}}},"next_page_token":{orjson.dumps(next_token).decode()}}}'
        return web.Response(body=body.encode(), content_type="application/json")
