"""Finnhub earnings calendar: `GET /api/v1/calendar/earnings?from=&to=&symbol=&token=`.

Answers `{"earningsCalendar": [...]}` from the replayed market's earnings, newest first as Finnhub lists
them. The token goes in the query (or the `X-Finnhub-Token` header); a missing or unknown token is 401,
past the per-token budget 429 (Finnhub's free tier allows 60 calls/min).
"""

from __future__ import annotations

from datetime import date

import orjson
import polars as pl
from aiohttp import web

from hybridtrader.venue.auth import WindowLimiter
from hybridtrader.venue.market import ReplayMarket


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}),
                        content_type="application/json", headers=headers)


class FinnhubApi:
    def __init__(self, market: ReplayMarket, tokens: set[str], per_minute: int) -> None:
        self.market = market
        self.tokens = tokens
        self.limiter = WindowLimiter(per_minute)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v1/calendar/earnings", self.earnings)]

    async def earnings(self, request: web.Request) -> web.Response:
        q = request.query
        token = q.get("token") or request.headers.get("X-Finnhub-Token")
        if token not in self.tokens:
            return _error(401, "Invalid API key")
        allowed, headers = self.limiter.hit(token)
        if not allowed:
            return _error(429, "API limit reached. Please try again later.", headers)
        try:
            lo = date.fromisoformat(q["from"]) if q.get("from") else date.min
            hi = date.fromisoformat(q["to"]) if q.get("to") else date.max
        except ValueError:
            return _error(422, f"Wrong date format: from={q.get('from')!r} to={q.get('to')!r} (YYYY-MM-DD)")
        e = self.market.earnings.filter(pl.col("date").is_between(lo, hi))
        if q.get("symbol"):
            e = e.filter(pl.col("symbol") == q["symbol"].upper())
        rows = e.sort("date", "symbol", descending=[True, False]).select(
            pl.col("date").dt.strftime("%Y-%m-%d").alias("date"),
            pl.col("eps_actual").alias("epsActual"),
            pl.col("eps_estimate").alias("epsEstimate"),
            pl.col("hour"),
            pl.col("date").dt.quarter().alias("quarter"),
            pl.lit(None, dtype=pl.Float64).alias("revenueActual"),
            pl.lit(None, dtype=pl.Float64).alias("revenueEstimate"),
            pl.col("symbol"),
            pl.col("date").dt.year().alias("year"),
        )
        body = f'{{"earningsCalendar":{rows.write_json()}}}'
        return web.Response(body=body.encode(), content_type="application/json", headers=headers)
