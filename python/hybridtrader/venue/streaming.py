"""What the Alpaca and Polygon streams share: accepting sockets, subscriptions, the replay pump and
stream faults, and the optional send log.

A pump plays the subscribed tapes from the connection's start time. At a finite speed it sends what the
clock has reached and sleeps until the next event, but at least `tick_s` (a feed server batches what
happened in the last moment into one frame instead of a frame per event); at max speed it sends batches as
fast as the socket drains, keeping the tapes in step (no tape runs more than one batch ahead of another).

JSON frames are cut out of text encoded a block of tape rows at a time (`JsonFrames`): a paced stream
sends thousands of frames of a few messages a second, and a Polars query per frame (~0.5 ms) would make
the venue, not the client, the bottleneck.

Every accepted socket is registered on the app, so that shutting the venue down closes them all at once
with 1001 (going away) instead of waiting for each client to hang up.

The send log (`venue.record_sends`) stamps every data frame with the wall clock (`time.time_ns`, shared by
all processes of the host) just before it is handed to the socket, per connection and tape, so a client's
tick-to-handler latency can be measured from the moment the venue sent each event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import msgpack
import numpy as np
import orjson
from aiohttp import WSCloseCode, web

from hybridtrader.venue.faults import Faults
from hybridtrader.venue.replay import ReplayClock, Tape, Tapes

ALL = -1  # subscription to every symbol ("*")
IDLE_POLL_S = 0.25
CLOSE_TIMEOUT_S = 1.0  # at shutdown: how long a client gets to answer our close frame
SOCKETS = web.AppKey("stream_sockets", weakref.WeakSet)
JSON_BLOCK_ROWS = 2048  # tape rows encoded to JSON at once (about 1.5 ms of Polars work)
JSON_CACHED_BLOCKS = 64  # per encoder: every connection reads its tapes forward, so few are live

Encoder = Callable[[Tape, np.ndarray], bytes | str]


class JsonFrames:
    """A JSON encoder: the frame (an array of message objects) for ascending tape rows.

    `lines(tape, rows)` gives the messages of rows as newline-delimited JSON (Polars `write_ndjson`; a
    raw newline never occurs inside JSON text). Blocks of JSON_BLOCK_ROWS rows are encoded once and kept
    in a small LRU cache; a frame is then slices of that text: a contiguous run of rows is one slice.
    """

    def __init__(self, lines: Callable[[Tape, np.ndarray], str]) -> None:
        self.lines = lines
        self._blocks: OrderedDict[tuple[int, int], tuple[Tape, bytes, np.ndarray, np.ndarray]] = OrderedDict()

    def _block(self, tape: Tape, k: int) -> tuple[bytes, np.ndarray, np.ndarray]:
        key = (id(tape), k)  # the entry holds the tape, so its id is not reused while cached
        hit = self._blocks.get(key)
        if hit is None:
            lo = k * JSON_BLOCK_ROWS
            text = self.lines(tape, np.arange(lo, min(lo + JSON_BLOCK_ROWS, len(tape)))).encode()
            ends = np.flatnonzero(np.frombuffer(text, np.uint8) == ord("\n"))
            starts = np.concatenate(([0], ends[:-1] + 1))
            hit = (tape, text, starts, ends)
            self._blocks[key] = hit
            if len(self._blocks) > JSON_CACHED_BLOCKS:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(key)
        return hit[1], hit[2], hit[3]

    def __call__(self, tape: Tape, rows: np.ndarray) -> str:
        parts: list[bytes] = []
        blocks = rows // JSON_BLOCK_ROWS
        for chunk in np.split(rows, np.flatnonzero(np.diff(blocks)) + 1):
            k = int(chunk[0]) // JSON_BLOCK_ROWS
            text, starts, ends = self._block(tape, k)
            local = chunk - k * JSON_BLOCK_ROWS
            if int(local[-1] - local[0]) == local.size - 1:
                parts.append(text[starts[local[0]] : ends[local[-1]]].replace(b"\n", b","))
            else:
                bounds = zip(starts[local].tolist(), ends[local].tolist(), strict=True)
                parts.extend(text[a:b] for a, b in bounds)
        return f"[{b','.join(parts).decode()}]"


class StreamDown(web.HTTPServiceUnavailable):
    """The provider's stream endpoint is down (fault `streams_down`): the upgrade is refused."""


async def accept(request: web.Request, provider: str, faults: Faults) -> web.WebSocketResponse:
    """Upgrade the request to a websocket registered for shutdown; refused with 503 while the provider's
    stream is down."""
    if faults.stream_down(provider):
        raise StreamDown(text=f"{provider} stream is down (injected fault)")
    ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    return ws


def track_sockets(app: web.Application) -> None:
    """Register the socket set `accept` fills and the shutdown hook that closes its sockets."""
    app[SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(_close_sockets)


async def _close_sockets(app: web.Application) -> None:
    await asyncio.gather(*(_going_away(ws) for ws in list(app[SOCKETS])))


async def _going_away(ws: web.WebSocketResponse) -> None:
    """Close frame 1001; a client that does not answer (or a socket that cannot drain) within
    CLOSE_TIMEOUT_S is cut, and the handler ends either way."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        await asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY, message=b"venue shutting down"),
                               CLOSE_TIMEOUT_S)


@dataclass
class Subscriptions:
    """Per tape kind: the set of subscribed symbol codes (ALL for "*"); names kept for the replies."""

    names: dict[str, set[str]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, kind: str, symbols: list[str]) -> None:
        self.names.setdefault(kind, set()).update(symbols)
        self.changed.set()

    def remove(self, kind: str, symbols: list[str]) -> None:
        self.names.get(kind, set()).difference_update(symbols)
        self.changed.set()

    def total_symbols(self) -> int:
        return len(set().union(*self.names.values())) if self.names else 0

    def codes(self, kind: str, codes: dict[str, int]) -> np.ndarray | int | None:
        names = self.names.get(kind)
        if not names:
            return None
        if "*" in names:
            return ALL
        return np.array(sorted(codes[n] for n in names if n in codes), dtype=np.int32)


class SendLog:
    """Per connection and tape: each sent event's time (event time, UTC ns) and the wall time its frame
    went to the socket. Grows while recording: meant for measurements, off by default."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._conns: dict[int, dict[str, Any]] = {}

    def open(self, provider: str) -> int:
        cid = next(self._ids)
        self._conns[cid] = {"provider": provider, "tapes": {}}
        return cid

    def record(self, cid: int, kind: str, ts: np.ndarray, sent_ns: int) -> None:
        self._conns[cid]["tapes"].setdefault(kind, []).append((ts, sent_ns))

    def export(self) -> list[dict[str, Any]]:
        """One entry per connection in the order they opened: provider and, per tape, `ts` and `sent_ns`
        arrays with one element per event."""
        out = []
        for cid, conn in self._conns.items():
            tapes = {}
            for kind, parts in conn["tapes"].items():
                ts = np.concatenate([t for t, _ in parts])
                sent = np.repeat([s for _, s in parts], [t.size for t, _ in parts])
                tapes[kind] = {"ts": ts, "sent_ns": sent}
            out.append({"id": cid, "provider": conn["provider"], "tapes": tapes})
        return out

    def clear(self) -> None:
        self._conns.clear()


class StreamDropped(Exception):
    """The stream ended on purpose: a fault dropped it, or the client closed it."""


class Pump:
    """Sends the subscribed part of each tape to one connection as the replay clock passes it."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        clock: ReplayClock,
        tapes: Tapes,
        encoders: dict[str, Encoder],
        subs: Subscriptions,
        batch: int,
        faults: Faults,
        codes: dict[str, int] | None = None,
        *,
        provider: str,
        unknown: dict[str, Any],
        sends: SendLog | None = None,
        tick_s: float = 0.0,
    ) -> None:
        """`provider` names the stream for the `streams_down` fault; `unknown` is the message of a type the
        provider never sends that the `stream_unknown_every` fault slips into data frames; `sends`, when
        given, records every data frame sent; `tick_s` is the shortest sleep between sends at a finite
        speed."""
        self.ws = ws
        self.request = request
        self.clock = clock
        self.tapes = tapes
        self.encoders = encoders
        self.subs = subs
        self.batch = batch
        self.faults = faults
        self.codes = codes if codes is not None else tapes.market.codes  # subscribable name -> code
        self.pos_ns = clock.now_ns()
        self.cursors: dict[str, int] = {}
        self.frames_sent = 0
        self.provider = provider
        self.unknown = unknown
        self.sends = sends
        self.tick_s = tick_s
        self.send_id = sends.open(provider) if sends is not None else 0

    def _cursor(self, kind: str, tape: Tape) -> int:
        if kind not in self.cursors:
            # A newly subscribed tape starts where the connection is: at a finite speed that is the market
            # time of the subscription (a provider sends what happens after it, never what happened while
            # the connection sat unsubscribed); at max speed the position the other tapes have reached.
            pos = self.pos_ns if self.clock.max_speed else max(self.pos_ns, self.clock.now_ns())
            self.cursors[kind] = int(np.searchsorted(tape.emit, pos, side="right"))
        return self.cursors[kind]

    async def run(self) -> None:
        codes = self.codes
        while not self.ws.closed:
            if self.faults.stream_down(self.provider):
                self._cut()
            active = {}
            for kind in self.encoders:
                sel = self.subs.codes(kind, codes)
                if sel is not None:
                    tape = self.tapes.get(kind)
                    active[kind] = (tape, sel)
                    self._cursor(kind, tape)
            self.subs.changed.clear()
            pending = {k: v for k, v in active.items() if self.cursors[k] < len(v[0])}
            if not pending:
                await self._wait(IDLE_POLL_S)
                continue
            if self.clock.max_speed:
                upto = min(int(t.emit[min(self.cursors[k] + self.batch, len(t)) - 1])
                           for k, (t, _) in pending.items())
            else:
                upto = self.clock.now_ns()
            for kind, (tape, sel) in pending.items():
                await self._send_until(kind, tape, sel, upto)
            self.pos_ns = max(self.pos_ns, upto)
            if not self.clock.max_speed:
                nxt = [int(t.emit[self.cursors[k]]) for k, (t, _) in pending.items()
                       if self.cursors[k] < len(t)]
                delay = self.clock.wall_seconds_until(min(nxt)) if nxt else IDLE_POLL_S
                await self._wait(min(max(delay, self.tick_s), IDLE_POLL_S))
            else:
                await asyncio.sleep(0)

    async def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subs.changed.wait(), seconds)

    async def _send_until(self, kind: str, tape: Tape, sel: np.ndarray | int, upto: int) -> None:
        start = self.cursors[kind]
        end = start + int(np.searchsorted(tape.emit[start:], upto, side="right"))
        self.cursors[kind] = end
        if end <= start:
            return
        rows = np.arange(start, end, dtype=np.int64)
        if not isinstance(sel, int):
            rows = rows[np.isin(tape.code[start:end], sel)]
        for i in range(0, rows.size, self.batch):
            chunk = rows[i : i + self.batch]
            payload = self.encoders[kind](tape, chunk)
            if self.sends is not None:
                self.sends.record(self.send_id, kind, tape.emit[chunk] - tape.delay, time.time_ns())
            await self.send_data(payload)

    async def send_data(self, payload: bytes | str) -> None:
        if self.ws.closed:  # the client's close arrived: nothing more goes out
            raise StreamDropped
        action = self.faults.stream_frame(self.frames_sent)
        self.frames_sent += 1
        if action == "drop" or self.faults.stream_down(self.provider):
            self._cut()
        if action == "malformed":
            payload = b"\x00\xc1{not a frame" if isinstance(payload, bytes) else "[{\"T\":\"t\",\"S\":"
        elif action == "unknown":
            payload = _prepend(self.unknown, payload)
        if isinstance(payload, bytes):
            await self.ws.send_bytes(payload)
        else:
            await self.ws.send_str(payload)

    def _cut(self) -> NoReturn:
        """Lose the connection the way a dead server does: no close frame."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        raise StreamDropped


def _prepend(msg: dict[str, Any], payload: bytes | str) -> bytes | str:
    """The data frame (a JSON or msgpack array of messages) with `msg` as its first message."""
    if isinstance(payload, bytes):
        return msgpack.packb([msg, *msgpack.unpackb(payload)])
    return f"[{orjson.dumps(msg).decode()},{payload[1:]}"


async def receive_json_like(
    ws: web.WebSocketResponse, decode: Callable[[bytes | str], object], timeout: float | None
) -> tuple[bool, object]:
    """Next client message as (ok, value); ok False means the socket closed. Undecodable -> (True, None)."""
    msg = await ws.receive(timeout=timeout)
    if msg.type in (web.WSMsgType.CLOSE, web.WSMsgType.CLOSING, web.WSMsgType.CLOSED, web.WSMsgType.ERROR):
        return False, None
    try:
        return True, decode(msg.data)
    except Exception:  # any undecodable frame is the client's syntax error, answered as such
        return True, None


async def run_pump(pump: Pump, reader: Callable[[], Awaitable[None]]) -> None:
    """Run the client reader and the pump until either ends; the other is cancelled."""
    tasks = [asyncio.ensure_future(reader()), asyncio.ensure_future(pump.run())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            exc = t.exception()
            if exc is not None and not isinstance(exc, StreamDropped | ConnectionResetError):
                raise exc
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
