"""Alpaca's trading stream (`/stream`): order updates (`trade_updates`) as the venue's fill simulator makes
them, in Alpaca's wire format, so alpaca-py's `TradingStream` can listen to the local venue.

Protocol (as Alpaca documents it and alpaca-py speaks it): the client sends
`{"action": "authenticate", "data": {"key_id", "secret_key"}}` (or `{"action": "auth", "key", "secret"}`)
and gets `{"stream": "authorization", "data": {"status": "authorized"|"unauthorized", ...}}`; then
`{"action": "listen", "data": {"streams": ["trade_updates"]}}` answered by `{"stream": "listening", ...}`;
from then on each order event comes as `{"stream": "trade_updates", "data": {"event", "order",
"timestamp", "price", "qty", "position_qty"}}` (event: new, fill, partial_fill, canceled, expired,
rejected, replaced). Alpaca sends these as binary frames; so does the venue.

The venue's matching only runs when something asks the broker to sync (a REST call); a ticker here syncs
every `tick_s` while anyone listens, so fills are pushed as the replay clock passes the quotes that make
them. Faults: `streams_down` containing "alpaca" refuses the upgrade and cuts open sockets;
`stream_drop_after_frames` closes a socket after N update frames (updates sent on no socket are lost, as a
real stream drop loses them: the client must reconcile through REST).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from hybridtrader.venue.alpaca_trading import Broker
from hybridtrader.venue.auth import KeyRing
from hybridtrader.venue.faults import Faults

log = logging.getLogger(__name__)


def _frame(stream: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


class _Listener:
    """One authenticated socket's outgoing queue of trade update frames."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.listening = False
        self.sent = 0


class AlpacaTradingStream:
    def __init__(self, broker: Broker, keys: KeyRing, faults: Faults, *, auth_timeout_s: float = 10.0,
                 tick_s: float = 0.05) -> None:
        self.broker = broker
        self.keys = keys
        self.faults = faults
        self.auth_timeout_s = auth_timeout_s
        self.tick_s = tick_s
        self._listeners: set[_Listener] = set()
        self._ticker: asyncio.Task[None] | None = None
        broker.listeners.append(self._publish)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/stream", self.handle)]

    def _publish(self, event: str, order: dict[str, Any], extra: dict[str, Any]) -> None:
        """Broker listener (called on the venue's loop): queue the update for every listening socket."""
        frame = _frame("trade_updates", {"event": event, "order": order, **extra})
        for listener in self._listeners:
            if listener.listening:
                listener.queue.put_nowait(frame)

    async def _tick(self) -> None:
        while self._listeners:
            self.broker.sync()
            await asyncio.sleep(self.tick_s)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.faults.stream_down("alpaca"):
            return web.Response(status=503, text="trading stream unavailable (injected fault)")
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        listener = _Listener()
        try:
            if not await self._authenticate(ws):
                return ws
            self._listeners.add(listener)
            if self._ticker is None or self._ticker.done():
                self._ticker = asyncio.get_running_loop().create_task(self._tick())
            await self._serve(ws, listener)
        finally:
            self._listeners.discard(listener)
            await ws.close()
        return ws

    async def _authenticate(self, ws: web.WebSocketResponse) -> bool:
        try:
            msg = await asyncio.wait_for(ws.receive(), self.auth_timeout_s)
        except TimeoutError:
            return False
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return False
        try:
            body = orjson.loads(msg.data)
            data = body.get("data") or {}
            key = data.get("key_id", body.get("key"))
            secret = data.get("secret_key", body.get("secret"))
            action = body.get("action")
        except (orjson.JSONDecodeError, AttributeError):
            key = secret = action = None
        ok = action in ("authenticate", "auth") and self.keys.check(key, secret)
        status = "authorized" if ok else "unauthorized"
        await ws.send_bytes(_frame("authorization", {"status": status, "action": "authenticate"}))
        return ok

    async def _serve(self, ws: web.WebSocketResponse, listener: _Listener) -> None:
        reader = asyncio.ensure_future(self._read(ws, listener))
        getter: asyncio.Future[bytes] | None = None
        try:
            while not reader.done():
                getter = asyncio.ensure_future(listener.queue.get())
                await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    break
                if self.faults.stream_down("alpaca") or self.faults.stream_frame(listener.sent) == "drop":
                    break  # this update is lost with the socket
                await ws.send_bytes(getter.result())
                listener.sent += 1
        finally:
            for task in (getter, reader):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _read(self, ws: web.WebSocketResponse, listener: _Listener) -> None:
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            try:
                body = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                await ws.send_bytes(_frame("error", {"error": "invalid JSON"}))
                continue
            if body.get("action") == "listen":
                streams = [s for s in (body.get("data") or {}).get("streams", []) if s == "trade_updates"]
                listener.listening = bool(streams)
                await ws.send_bytes(_frame("listening", {"streams": streams}))
