"""Alpaca market data stream v2 at `/v2/{iex,sip,delayed_sip,test}`.

Every frame is an array of messages. JSON text frames by default; msgpack binary frames when the
handshake carries `Content-Type: application/msgpack` (alpaca-py's StockDataStream does), with `t` then a
msgpack Timestamp. Sequence: connected -> auth (within the timeout) -> subscribe/unsubscribe; trades
`T:"t"`, quotes `"q"` and minute bars `"b"` follow the replay clock. Errors use Alpaca's codes:
400 invalid syntax, 401 not authenticated, 402 auth failed, 403 already authenticated, 404 auth timeout,
405 symbol limit exceeded, 406 connection limit exceeded. The `test` feed replays the same market with
its first symbol renamed FAKEPACA, as Alpaca's test feed streams FAKEPACA.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import msgpack
import numpy as np
import orjson
import polars as pl
from aiohttp import web

from hybridtrader.venue.auth import KeyRing
from hybridtrader.venue.faults import Faults
from hybridtrader.venue.msgpack_frames import pack_maps
from hybridtrader.venue.replay import ReplayClock, Tape, Tapes
from hybridtrader.venue.streaming import (
    Encoder,
    JsonFrames,
    Pump,
    SendLog,
    Subscriptions,
    accept,
    receive_json_like,
    run_pump,
)

FEEDS = ("iex", "sip", "delayed_sip", "test")
# Alpaca channel name -> the tape that feeds it (other channels are accepted and stay silent).
CHANNELS = {"trades": "trades", "quotes": "quotes", "bars": "bars", "updatedBars": None, "dailyBars": None,
            "statuses": None, "lulds": None, "corrections": None, "cancelErrors": None}
_T_NS = "%Y-%m-%dT%H:%M:%S%.9fZ"
_T_S = "%Y-%m-%dT%H:%M:%SZ"
_AT, _R = msgpack.packb(["@"]), msgpack.packb(["R"])
UNKNOWN = {"T": "zz", "msg": "a message type Alpaca never sends (injected fault)"}


def _json_encoders() -> dict[str, Encoder]:
    """JSON frames with `t` as RFC 3339 text with nanoseconds."""

    def trades(tape: Tape, rows: np.ndarray) -> str:
        return tape.frame[rows].select(
            pl.lit("t").alias("T"), pl.col("symbol").alias("S"), pl.lit(pl.Series(rows + 1)).alias("i"),
            pl.lit("V").alias("x"), pl.col("price").alias("p"), pl.col("size").alias("s"),
            pl.lit(["@"]).alias("c"), pl.col("ts").dt.strftime(_T_NS).alias("t"), pl.lit("C").alias("z"),
        ).write_ndjson()

    def quotes(tape: Tape, rows: np.ndarray) -> str:
        return tape.frame[rows].select(
            pl.lit("q").alias("T"), pl.col("symbol").alias("S"), pl.lit("V").alias("bx"),
            pl.col("bid").alias("bp"), pl.col("bid_size").alias("bs"), pl.lit("V").alias("ax"),
            pl.col("ask").alias("ap"), pl.col("ask_size").alias("as"), pl.lit(["R"]).alias("c"),
            pl.col("ts").dt.strftime(_T_NS).alias("t"), pl.lit("C").alias("z"),
        ).write_ndjson()

    def bars(tape: Tape, rows: np.ndarray) -> str:
        return tape.frame[rows].select(
            pl.lit("b").alias("T"), pl.col("symbol").alias("S"), pl.col("open").alias("o"),
            pl.col("high").alias("h"), pl.col("low").alias("l"), pl.col("close").alias("c"),
            pl.col("volume").alias("v"), pl.col("ts").dt.strftime(_T_S).alias("t"),
            pl.col("trades").alias("n"), pl.col("vwap").alias("vw"),
        ).write_ndjson()

    return {"trades": JsonFrames(trades), "quotes": JsonFrames(quotes), "bars": JsonFrames(bars)}


def _msgpack_encoders(names: list[str]) -> dict[str, Encoder]:
    """msgpack frames with `t` as a msgpack Timestamp, as alpaca-py's StockDataStream expects."""

    def col(tape: Tape, rows: np.ndarray, name: str) -> np.ndarray:
        return tape.frame[name].to_numpy()[rows]

    def stamps(tape: Tape, rows: np.ndarray) -> np.ndarray:
        return tape.emit[rows] - tape.delay

    def trades(tape: Tape, rows: np.ndarray) -> bytes:
        return pack_maps([
            ("T", "str", "t"), ("i", "i64", rows + 1), ("x", "str", "V"),
            ("p", "f64", col(tape, rows, "price")), ("s", "f64", col(tape, rows, "size")), ("c", "raw", _AT),
            ("t", "ts", stamps(tape, rows)), ("z", "str", "C"),
        ], names, tape.code[rows])

    def quotes(tape: Tape, rows: np.ndarray) -> bytes:
        return pack_maps([
            ("T", "str", "q"), ("bx", "str", "V"), ("bp", "f64", col(tape, rows, "bid")),
            ("bs", "f64", col(tape, rows, "bid_size")), ("ax", "str", "V"),
            ("ap", "f64", col(tape, rows, "ask")), ("as", "f64", col(tape, rows, "ask_size")),
            ("c", "raw", _R), ("t", "ts", stamps(tape, rows)), ("z", "str", "C"),
        ], names, tape.code[rows])

    def bars(tape: Tape, rows: np.ndarray) -> bytes:
        return pack_maps([
            ("T", "str", "b"), *[(k, "f64", col(tape, rows, c)) for k, c in (
                ("o", "open"), ("h", "high"), ("l", "low"), ("c", "close"), ("v", "volume"), ("vw", "vwap"))],
            ("n", "i64", col(tape, rows, "trades")), ("t", "ts", stamps(tape, rows)),
        ], names, tape.code[rows])

    return {"trades": trades, "quotes": quotes, "bars": bars}


class AlpacaStream:
    """The `/v2/{feed}` WebSocket endpoint (one instance per venue; counts connections per key)."""

    def __init__(self, clock: ReplayClock, tapes: Tapes, keys: KeyRing, faults: Faults, *,
                 auth_timeout_s: float, max_symbols: int, batch: int, connections_per_key: int,
                 sends: SendLog | None = None, tick_s: float = 0.0) -> None:
        self.clock = clock
        self.tapes = tapes
        self.keys = keys
        self.faults = faults
        self.auth_timeout_s = auth_timeout_s
        self.max_symbols = max_symbols
        self.batch = batch
        self.connections_per_key = connections_per_key
        self.connections: Counter[str] = Counter()
        self.sends = sends
        self.tick_s = tick_s
        self._json = _json_encoders()
        self._msgpack = _msgpack_encoders(tapes.market.names)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v2/{feed}", self.handle)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["feed"] not in FEEDS:
            raise web.HTTPNotFound(text=f"unknown feed {request.match_info['feed']!r}")
        binary = request.headers.get("Content-Type", "").lower().startswith("application/msgpack")
        ws = await accept(request, "alpaca", self.faults)

        async def send(msgs: list[dict[str, Any]]) -> None:
            if binary:
                await ws.send_bytes(msgpack.packb(msgs))
            else:
                await ws.send_str(orjson.dumps(msgs).decode())

        def decode(data: bytes | str) -> object:
            if isinstance(data, bytes) and binary:
                return msgpack.unpackb(data)
            return orjson.loads(data)

        def error(code: int, msg: str) -> list[dict[str, Any]]:
            return [{"T": "error", "code": code, "msg": msg}]

        await send([{"T": "success", "msg": "connected"}])
        key = await self._authenticate(ws, send, decode, error)
        if key is None:
            await ws.close()
            return ws
        try:
            subs = Subscriptions()
            encoders, codes = self._feed(request.match_info["feed"], binary)
            pump = Pump(ws, request, self.clock, self.tapes, encoders, subs, self.batch, self.faults, codes,
                        provider="alpaca", unknown=UNKNOWN, sends=self.sends,
                        tick_s=self.tick_s)

            async def reader() -> None:
                while True:
                    ok, msg = await receive_json_like(ws, decode, None)
                    if not ok:
                        return
                    await self._on_message(msg, subs, send, error)

            await run_pump(pump, reader)
        finally:
            self.connections[key] -= 1
        if not ws.closed:
            await ws.close()
        return ws

    def _feed(self, feed: str, binary: bool) -> tuple[dict[str, Encoder], dict[str, int] | None]:
        """Encoders and subscribable names of a feed (the test feed renames the first symbol)."""
        if feed != "test":
            return (self._msgpack if binary else self._json), None
        names = ["FAKEPACA", *self.tapes.market.names[1:]]
        if binary:
            return _msgpack_encoders(names), {n: i for i, n in enumerate(names)}
        real = orjson.dumps(self.tapes.market.names[0]).decode()

        def renamed(enc: Encoder) -> Encoder:
            return lambda tape, rows: str(enc(tape, rows)).replace(f'"S":{real}', '"S":"FAKEPACA"')

        return {k: renamed(e) for k, e in self._json.items()}, {n: i for i, n in enumerate(names)}

    async def _authenticate(self, ws, send, decode, error) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.auth_timeout_s
        while True:
            try:
                ok, msg = await receive_json_like(ws, decode, max(0.0, deadline - loop.time()))
            except TimeoutError:
                await send(error(404, "auth timeout"))
                return None
            if not ok:
                return None
            if not isinstance(msg, dict) or "action" not in msg:
                await send(error(400, "invalid syntax"))
                continue
            if msg["action"] != "auth":
                await send(error(401, "not authenticated"))
                continue
            key, secret = msg.get("key"), msg.get("secret")
            if not self.keys.check(key, secret):
                await send(error(402, "auth failed"))
                return None
            if self.connections[key] >= self.connections_per_key:
                await send(error(406, "connection limit exceeded"))
                return None
            self.connections[key] += 1
            await send([{"T": "success", "msg": "authenticated"}])
            return key

    async def _on_message(self, msg: object, subs: Subscriptions, send, error) -> None:
        if not isinstance(msg, dict) or msg.get("action") not in ("auth", "subscribe", "unsubscribe"):
            await send(error(400, "invalid syntax"))
            return
        if msg["action"] == "auth":
            await send(error(403, "already authenticated"))
            return
        changes: dict[str, list[str]] = {}
        for channel in CHANNELS:
            symbols = msg.get(channel)
            if symbols is None:
                continue
            if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                await send(error(400, "invalid syntax"))
                return
            changes[channel] = [s if s == "*" else s.upper() for s in symbols]
        if msg["action"] == "subscribe":
            before = {k: set(v) for k, v in subs.names.items()}
            for channel, symbols in changes.items():
                subs.add(channel, symbols)
            if subs.total_symbols() > self.max_symbols:
                subs.names = before
                await send(error(405, "symbol limit exceeded"))
                return
        else:
            for channel, symbols in changes.items():
                subs.remove(channel, symbols)
        reply: dict[str, Any] = {"T": "subscription"}
        for channel in CHANNELS:
            reply[channel] = sorted(subs.names.get(channel, set()))
        await send([reply])
