"""Polygon (Massive) stocks stream at `/stocks`: JSON arrays of events.

Server `status: connected`; client `{"action":"auth","params":KEY}` -> `auth_success` / `auth_failed`;
`{"action":"subscribe","params":"T.AAPL,Q.*,AM.MSFT"}` -> one status per topic. Events: trades `T`
(sym, x, i, z, p, s, c, t ms, q), quotes `Q` (sym, bx, bp, bs, ax, ap, as, c, i, t, q, z), second
aggregates `A` and minute aggregates `AM` (sym, v, av, op, vw, o, c, h, l, a, z, s, e).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import polars as pl
from aiohttp import web

from hybridtrader.venue.auth import KeyRing
from hybridtrader.venue.faults import Faults
from hybridtrader.venue.replay import ReplayClock, Tape, Tapes
from hybridtrader.venue.streaming import (
    JsonFrames,
    Pump,
    SendLog,
    Subscriptions,
    accept,
    receive_json_like,
    run_pump,
)

TOPICS = {"T": "trades", "Q": "quotes", "A": "seconds", "AM": "bars"}
EXCHANGE_IEX = 10  # Polygon's numeric id of IEX
TAPE_C = 3  # Nasdaq-listed tape in Polygon's numbering (1 NYSE, 2 AMEX/ARCA, 3 Nasdaq)
_MS = pl.col("ts").dt.epoch("ms")
UNKNOWN = {"ev": "ZZ", "message": "an event type Polygon never sends (injected fault)"}


def _aggregates(ev: str, span_ms: int) -> Callable[[Tape, np.ndarray], str]:
    def enc(tape: Tape, rows: np.ndarray) -> str:
        return tape.frame[rows].select(
            pl.lit(ev).alias("ev"), pl.col("symbol").alias("sym"), pl.col("volume").alias("v"),
            pl.col("av"), pl.col("op"), pl.col("vwap").alias("vw"), pl.col("open").alias("o"),
            pl.col("close").alias("c"), pl.col("high").alias("h"), pl.col("low").alias("l"),
            pl.col("a"), (pl.col("volume") / pl.col("trades").clip(1)).round(0).cast(pl.Int64).alias("z"),
            _MS.alias("s"), (_MS + span_ms).alias("e"),
        ).write_ndjson()

    return enc


def _trades(tape: Tape, rows: np.ndarray) -> str:
    return tape.frame[rows].select(
        pl.lit("T").alias("ev"), pl.col("symbol").alias("sym"), pl.lit(EXCHANGE_IEX).alias("x"),
        pl.lit(pl.Series(rows + 1)).cast(pl.String).alias("i"), pl.lit(TAPE_C).alias("z"),
        pl.col("price").alias("p"),
        pl.col("size").alias("s"), pl.lit([0], dtype=pl.List(pl.Int64)).alias("c"), _MS.alias("t"),
        pl.lit(pl.Series(rows + 1)).alias("q"),
    ).write_ndjson()


def _quotes(tape: Tape, rows: np.ndarray) -> str:
    return tape.frame[rows].select(
        pl.lit("Q").alias("ev"), pl.col("symbol").alias("sym"), pl.lit(EXCHANGE_IEX).alias("bx"),
        pl.col("bid").alias("bp"), pl.col("bid_size").alias("bs"), pl.lit(EXCHANGE_IEX).alias("ax"),
        pl.col("ask").alias("ap"), pl.col("ask_size").alias("as"), pl.lit(1).alias("c"),
        pl.lit([], dtype=pl.List(pl.Int64)).alias("i"), _MS.alias("t"),
        pl.lit(pl.Series(rows + 1)).alias("q"),
        pl.lit(TAPE_C).alias("z"),
    ).write_ndjson()


def with_day_totals(bars: pl.DataFrame) -> pl.DataFrame:
    """Adds Polygon's running day fields: accumulated volume `av`, day open `op`, day VWAP `a`."""
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    pv = (pl.col("vwap") * pl.col("volume")).cum_sum().over("symbol", day, order_by="ts")
    av = pl.col("volume").cum_sum().over("symbol", day, order_by="ts")
    return bars.with_columns(
        av.alias("av"),
        pl.col("open").first().over("symbol", day, order_by="ts").alias("op"),
        (pv / av).alias("a"),
    )


class PolygonStream:
    def __init__(self, clock: ReplayClock, tapes: Tapes, keys: KeyRing, faults: Faults, *,
                 auth_timeout_s: float, batch: int, sends: SendLog | None = None,
                 tick_s: float = 0.0) -> None:
        self.clock = clock
        self.tapes = tapes
        self.keys = keys
        self.faults = faults
        self.auth_timeout_s = auth_timeout_s
        self.batch = batch
        self.sends = sends
        self.tick_s = tick_s
        seconds, minutes = _aggregates("A", 1000), _aggregates("AM", 60_000)
        self.encoders = {k: JsonFrames(lines) for k, lines in
                         {"trades": _trades, "quotes": _quotes, "seconds": seconds, "bars": minutes}.items()}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/stocks", self.handle)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = await accept(request, "polygon", self.faults)

        async def status(*items: tuple[str, str]) -> None:
            await ws.send_str(orjson.dumps([{"ev": "status", "status": s, "message": m} for s, m in items])
                              .decode())

        await status(("connected", "Connected Successfully"))
        if not await self._authenticate(ws, status):
            await ws.close()
            return ws
        subs = Subscriptions()
        pump = Pump(ws, request, self.clock, self._day_tapes(), self.encoders, subs, self.batch, self.faults,
                    provider="polygon", unknown=UNKNOWN, sends=self.sends,
                        tick_s=self.tick_s)

        async def reader() -> None:
            while True:
                ok, msg = await receive_json_like(ws, orjson.loads, None)
                if not ok:
                    return
                await self._on_message(msg, subs, status)

        await run_pump(pump, reader)
        if not ws.closed:
            await ws.close()
        return ws

    def _day_tapes(self) -> Tapes:
        """Aggregate tapes need Polygon's running day totals; computed once per tape."""
        for kind in ("seconds", "bars"):
            tape = self.tapes.get(kind)
            if "av" not in tape.frame.columns:
                tape.frame = with_day_totals(tape.frame)
        return self.tapes

    async def _authenticate(self, ws: web.WebSocketResponse, status) -> bool:
        while True:
            try:
                ok, msg = await receive_json_like(ws, orjson.loads, self.auth_timeout_s)
            except TimeoutError:
                await status(("auth_timeout", "authentication timed out"))
                return False
            if not ok:
                return False
            if not isinstance(msg, dict) or msg.get("action") != "auth":
                await status(("error", "not authorized: authenticate first"))
                continue
            if msg.get("params") in self.keys.keys:
                await status(("auth_success", "authenticated"))
                return True
            await status(("auth_failed", "authentication failed"))
            return False

    async def _on_message(self, msg: Any, subs: Subscriptions, status) -> None:
        if not isinstance(msg, dict) or msg.get("action") not in ("subscribe", "unsubscribe", "auth") \
                or not isinstance(msg.get("params"), str):
            await status(("error", "invalid message"))
            return
        if msg["action"] == "auth":
            await status(("error", "already authenticated"))
            return
        replies = []
        for topic in (t.strip() for t in msg["params"].split(",") if t.strip()):
            ev, _, sym = topic.partition(".")
            if ev not in TOPICS or not sym:
                replies.append(("error", f"invalid topic: {topic}"))
                continue
            sym = sym if sym == "*" else sym.upper()
            if msg["action"] == "subscribe":
                subs.add(TOPICS[ev], [sym])
                replies.append(("success", f"subscribed to: {ev}.{sym}"))
            else:
                subs.remove(TOPICS[ev], [sym])
                replies.append(("success", f"unsubscribed to: {ev}.{sym}"))
        await status(*replies)
