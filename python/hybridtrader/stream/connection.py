"""One websocket connection to one provider, kept alive: handshake, auth, (re)subscribe, dead-socket
detection (websocket pings + a read timeout for connected-but-mute sockets) and reconnects with
exponential backoff and full jitter. Authentication failures stop the connection with `AuthError`
instead of retrying; a connection-limit error (Alpaca 406) waits `connection_limit_s` before retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from hybridtrader.config import StreamBackoffConfig, StreamConfig
from hybridtrader.errors import ConfigError
from hybridtrader.market.timeconv import NS_PER_SECOND
from hybridtrader.stream.messages import Frame
from hybridtrader.stream.providers import (
    AuthError,
    ConnectionLimitError,
    ProtocolError,
    StreamError,
    StreamProtocol,
    Subscriptions,
    alpaca_error,
)

log = logging.getLogger(__name__)

State = Literal["idle", "connecting", "live", "backoff", "failed", "closed"]
FrameHandler = Callable[["Connection", Frame, int], Awaitable[None]]
StateHandler = Callable[["Connection", State], None]


def backoff_delay(attempt: int, cfg: StreamBackoffConfig, rng: random.Random) -> float:
    """Full jitter: uniform(0, min(max_s, initial_s * 2**(attempt-1))) for attempt >= 1."""
    if attempt < 1:
        raise ConfigError(f"attempt must be >= 1, got {attempt}")
    cap = min(cfg.max_s, cfg.initial_s * 2.0 ** min(attempt - 1, 62))
    return rng.uniform(0.0, cap)


class Connection:
    """Keeps one provider socket up until `close()`. Frames go to `on_frame(conn, frame, recv_ns)`
    (`recv_ns` = `time.perf_counter_ns()` when the frame came off the socket), state changes to
    `on_state(conn, state)`."""

    def __init__(
        self,
        name: str,
        protocol: StreamProtocol,
        subscriptions: Subscriptions,
        on_frame: FrameHandler,
        cfg: StreamConfig,
        on_state: StateHandler | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.protocol = protocol
        self.subscriptions = subscriptions
        self._on_frame = on_frame
        self._on_state = on_state
        self._cfg = cfg
        self._rng = rng or random.Random()
        self._parser = protocol.parser()
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._live = asyncio.Event()
        self.state: State = "idle"
        self.error: StreamError | None = None  # set when the connection gave up for good
        self.attempts = 0  # connection attempts, successful or not
        self.last_error: Exception | None = None
        self.connects = 0  # successful handshakes; reconnects = connects - 1
        self.drops = 0
        self.drop_times: deque[int] = deque(maxlen=64)  # perf_counter_ns of recent drops (flap detection)
        self.errors: Counter[str] = Counter()  # provider error messages received, by code
        self.last_frame_ns = 0  # perf_counter_ns of the last frame of any kind
        self.last_data_ns = 0  # ... of the last frame with market data
        self.live_since_ns = 0

    # ------------------------------------------------------------------------------------ control
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"stream-{self.name}")

    async def wait_live(self, timeout: float) -> None:
        """Wait until authenticated and subscribed. Raises AuthError, ConnectionLimitError (the first attempt
        was refused for the connection limit: the caller decides whether to wait so long) or TimeoutError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._live.is_set():
            if self.error is not None:
                raise self.error
            if isinstance(self.last_error, ConnectionLimitError):
                raise self.last_error
            if loop.time() >= deadline:
                why = f" (last error: {self.last_error})" if self.last_error else ""
                raise TimeoutError(
                    f"{self.name}: not connected to {self.protocol.url} after {timeout:g}s{why}"
                )
            await asyncio.sleep(0.02)

    @property
    def live(self) -> bool:
        return self.state == "live"

    async def update(self, action: Literal["subscribe", "unsubscribe"], change: Subscriptions) -> None:
        """Send a subscribe/unsubscribe for `change` if live; the caller keeps `subscriptions` current, so a
        later (re)connect subscribes to the right set either way."""
        ws = self._ws
        if ws is not None and self.state == "live" and not change.empty():
            with contextlib.suppress(WebSocketException, OSError):
                await ws.send(self.protocol.encode(self.protocol.subscription(action, change)))

    async def close(self) -> None:
        self._closing.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(WebSocketException, OSError):
                await ws.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await asyncio.wait_for(self._task, self._cfg.open_timeout_s)
                except TimeoutError:
                    self._task.cancel()
                    await asyncio.gather(self._task, return_exceptions=True)
        self._set_state("closed")

    def _set_state(self, state: State) -> None:
        if state == self.state:
            return
        self.state = state
        if state == "live":
            self._live.set()
        else:
            self._live.clear()
        if self._on_state is not None:
            self._on_state(self, state)

    # -------------------------------------------------------------------------------------- loop
    async def _run(self) -> None:
        cfg, attempt = self._cfg, 0
        while not self._closing.is_set():
            limit_hit = False
            self._set_state("connecting")
            self.attempts += 1
            try:
                await self._session()
            except AuthError as e:
                log.error("%s: %s; not reconnecting", self.name, e)
                self.error = e
                self._set_state("failed")
                return
            except ConnectionLimitError as e:
                log.warning("%s: %s", self.name, e)
                self.last_error = e
                limit_hit = True
            except (OSError, WebSocketException, StreamError, TimeoutError) as e:
                self.last_error = e
                if not self._closing.is_set():
                    log.warning("%s: connection lost: %s", self.name, e or type(e).__name__)
            if self._closing.is_set():
                break
            was_up = (
                self.live_since_ns
                and time.perf_counter_ns() - self.live_since_ns >= cfg.backoff.reset_after_s * NS_PER_SECOND
            )
            if self.state == "live":
                self.drops += 1
                self.drop_times.append(time.perf_counter_ns())
            attempt = 1 if was_up else attempt + 1
            self.live_since_ns = 0
            self._set_state("backoff")
            delay = backoff_delay(attempt, cfg.backoff, self._rng)
            if limit_hit:
                delay = max(delay, cfg.backoff.connection_limit_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)

    async def _session(self) -> None:
        cfg, proto = self._cfg, self.protocol
        async with connect(
            proto.url,
            additional_headers=proto.headers(),
            compression=None,
            open_timeout=cfg.open_timeout_s,
            ping_interval=cfg.ping_interval_s,
            ping_timeout=cfg.ping_timeout_s,
            close_timeout=2.0,
            max_size=None,
            max_queue=64,
            proxy=None,
        ) as ws:
            async with asyncio.timeout(cfg.open_timeout_s):
                await self._handshake(ws)
            self._ws = ws
            self.connects += 1
            self.last_error = None
            now = time.perf_counter_ns()
            self.live_since_ns = self.last_frame_ns = now
            self._set_state("live")
            watchdog = asyncio.get_running_loop().create_task(self._watchdog(ws))
            try:
                await self._read(ws)
            finally:
                watchdog.cancel()
                self._ws = None

    async def _control_frame(self, ws: ClientConnection) -> list[dict]:
        frame = self._parser.parse(await ws.recv(decode=False))
        if frame.malformed and not frame.control:
            raise ProtocolError(f"{self.name}: malformed frame during the handshake")
        return frame.control

    async def _handshake(self, ws: ClientConnection) -> None:
        proto = self.protocol
        msgs = await self._control_frame(ws)
        if not any(proto.is_connected(m) for m in msgs):
            for m in msgs:  # e.g. Alpaca answers an over-limit connect with a 406 error instead
                if m.get("T") == "error":
                    raise alpaca_error(m)
            raise ProtocolError(f"{self.name}: expected a 'connected' message, got {msgs!r}")
        await ws.send(proto.encode(proto.auth()))
        while True:
            for m in await self._control_frame(ws):
                if proto.check_auth(m):
                    if not self.subscriptions.empty():
                        await ws.send(proto.encode(proto.subscription("subscribe", self.subscriptions)))
                    return

    async def _read(self, ws: ClientConnection) -> None:
        parse, on_frame, recv = self._parser.parse, self._on_frame, ws.recv
        while True:
            raw = await recv(decode=False)
            now = time.perf_counter_ns()
            self.last_frame_ns = now
            frame = parse(raw)
            if frame.control:
                self._handle_control(frame.control)
            if frame.trades is not None or frame.quotes is not None or frame.bars is not None:
                self.last_data_ns = now
            await on_frame(self, frame, now)
            # recv() returns without suspending while frames are buffered: yield so the handlers run now
            # rather than after the whole backlog has been read (latency over a few us of throughput).
            await asyncio.sleep(0)

    def _handle_control(self, msgs: list[dict]) -> None:
        for m in msgs:
            if m.get("T") == "error":
                err = alpaca_error(m)
                self.errors[str(m.get("code"))] += 1
                if isinstance(err, (AuthError, ConnectionLimitError)):
                    raise err
                log.warning("%s: %s", self.name, err)
            elif m.get("ev") == "status" and m.get("status") in ("error", "auth_failed", "max_connections"):
                self.errors[str(m.get("status"))] += 1
                if m["status"] != "error":  # a refused topic is logged; a lost auth ends the socket
                    self.protocol.check_auth(m)
                log.warning("%s: %s", self.name, m.get("message"))

    async def _watchdog(self, ws: ClientConnection) -> None:
        """Abort a socket that has delivered nothing for read_timeout_s (pings catch dead TCP; this catches
        a server that keeps the socket open but stopped sending)."""
        limit = int(self._cfg.read_timeout_s * NS_PER_SECOND)
        step = min(1.0, self._cfg.read_timeout_s / 4)
        while True:
            await asyncio.sleep(step)
            if time.perf_counter_ns() - self.last_frame_ns > limit:
                log.warning(
                    "%s: no frame for %.1fs; dropping the socket", self.name, self._cfg.read_timeout_s
                )
                ws.transport.abort()
                return
