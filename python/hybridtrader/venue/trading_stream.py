"""Alpaca's trading stream at `/stream`: authenticate, listen to `trade_updates`, then every order update
of the venue's broker as it happens (new, partial_fill, fill, canceled, expired, rejected, replaced).

JSON frames, as Alpaca sends them:
- client `{"action": "authenticate", "data": {"key_id": ..., "secret_key": ...}}` ->
  `{"stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}}` (or
  "unauthorized", then the socket closes);
- client `{"action": "listen", "data": {"streams": ["trade_updates"]}}` ->
  `{"stream": "listening", "data": {"streams": ["trade_updates"]}}`;
- `{"stream": "trade_updates", "data": {"event": ..., "order": {...}, "timestamp": ..., "price", "qty",
  "position_qty" (fills)}}`.
While a client listens, the broker is brought up to the replay clock every `tick_s`, so fills stream as the
clock passes them (requests to the REST API do the same); an update is sent the moment it happens.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from hybridtrader.venue.alpaca_trading import Broker
from hybridtrader.venue.auth import KeyRing
from hybridtrader.venue.faults import Faults
from hybridtrader.venue.streaming import accept, receive_json_like

STREAMS = ("trade_updates",)


class TradingStream:
    def __init__(self, broker: Broker, keys: KeyRing, faults: Faults, *, auth_timeout_s: float,
                 tick_s: float) -> None:
        self.broker = broker
        self.keys = keys
        self.faults = faults
        self.auth_timeout_s = auth_timeout_s
        self.tick_s = max(tick_s, 0.001)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/stream", self.handle)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = await accept(request, "alpaca", self.faults)

        async def send(stream: str, data: dict[str, Any]) -> None:
            await ws.send_str(orjson.dumps({"stream": stream, "data": data}).decode())

        if not await self._authenticate(ws, send):
            await ws.close()
            return ws
        updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        listening: set[str] = set()
        listeners = self.broker.listeners

        def listener(event: str, order: dict[str, Any], extra: dict[str, Any]) -> None:
            updates.put_nowait({"event": event, "order": order, **extra})

        async def reader() -> None:
            while True:
                ok, msg = await receive_json_like(ws, orjson.loads, None)
                if not ok:
                    return
                if isinstance(msg, dict) and msg.get("action") == "listen":
                    streams = (msg.get("data") or {}).get("streams") or []
                    listening.clear()
                    listening.update(s for s in streams if s in STREAMS)
                    if "trade_updates" in listening and listener not in listeners:
                        listeners.append(listener)
                    elif "trade_updates" not in listening and listener in listeners:
                        listeners.remove(listener)
                    await send("listening", {"streams": sorted(listening)})
                else:
                    await send("listening", {"streams": sorted(listening),
                                             "error": f"unknown message {msg!r}"})

        async def pump() -> None:
            # An update goes out as soon as it is queued (an order request's or a clock move's own events at
            # once, as Alpaca streams them), in the order it was queued.
            while not ws.closed:
                await send("trade_updates", await updates.get())

        async def tick() -> None:
            # Paces bringing the broker up to the replay clock. Apart from the pump: a timed wait per
            # update (a task and a timer each) cost more than the update's send.
            while not ws.closed:
                self.broker.sync()
                await asyncio.sleep(self.tick_s)

        tasks = [asyncio.ensure_future(f()) for f in (reader, pump, tick)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if listener in listeners:
                listeners.remove(listener)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not ws.closed:
            await ws.close()
        return ws

    async def _authenticate(self, ws: web.WebSocketResponse, send: Any) -> bool:
        try:
            ok, msg = await receive_json_like(ws, orjson.loads, self.auth_timeout_s)
        except TimeoutError:
            return False
        data = msg.get("data") if isinstance(msg, dict) else None
        authorized = (ok and isinstance(msg, dict) and msg.get("action") in ("authenticate", "auth")
                      and isinstance(data, dict)
                      and self.keys.check(data.get("key_id"), data.get("secret_key")))
        if ok:
            await send("authorization", {"action": "authenticate",
                                         "status": "authorized" if authorized else "unauthorized"})
        return bool(authorized)
