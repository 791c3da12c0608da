"""The venue: one aiohttp app serving Alpaca data/trading REST, the Alpaca and Polygon streams and the
Finnhub calendar over a replayed market, bound to loopback, with a small control API under `/venue/`.

`Venue` runs it in-process on a background thread (context manager; `.urls` once started) or in the
foreground (`serve()`, used by `hybridtrader venue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from hybridtrader.config import Config, SlippageConfig, VenueConfig
from hybridtrader.errors import StateError
from hybridtrader.execution.fills import FillSettings
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.market.timeframe import Timeframe
from hybridtrader.venue.alpaca_data import ApiError, MarketDataApi, parse_time
from hybridtrader.venue.alpaca_stream import AlpacaStream
from hybridtrader.venue.alpaca_trading import Broker, TradingApi
from hybridtrader.venue.auth import LOCAL_FINNHUB_TOKEN, KeyRing, WindowLimiter
from hybridtrader.venue.faults import Faults
from hybridtrader.venue.finnhub import FinnhubApi
from hybridtrader.venue.market import ReplayMarket
from hybridtrader.venue.polygon_stream import PolygonStream
from hybridtrader.venue.replay import ReplayClock, Tapes
from hybridtrader.venue.streaming import SendLog, track_sockets
from hybridtrader.venue.trading_stream import TradingStream

log = logging.getLogger(__name__)

UNAUTHORIZED = ApiError(401, 40110000, "request is not authorized")
# At shutdown, after the streams were sent their close frames: how long requests still running may take
# before they are cancelled (aiohttp's default is 60 s, which a connected stream client would use up).
SHUTDOWN_TIMEOUT_S = 1.0


def load_market(config: VenueConfig) -> ReplayMarket:
    """The configured market: recorded parquet at `venue.market.path`, else a synthetic market."""
    m = config.market
    if m.path is not None:
        return ReplayMarket.from_parquet(m.path)
    from hybridtrader.market.synth import generate_market

    return ReplayMarket.from_synthetic(
        generate_market(symbols=m.symbols, sessions=m.sessions, start=m.start, seed=m.seed)
    )


def _as_replay_market(market: Any) -> ReplayMarket:
    if isinstance(market, ReplayMarket):
        return market
    if isinstance(market, str | Path):
        return ReplayMarket.from_parquet(market)
    return ReplayMarket.from_synthetic(market)


class Venue:
    """A local Alpaca/Polygon/Finnhub-compatible venue.

    >>> with Venue(market=m) as v:
    ...     StockHistoricalDataClient(LOCAL_KEY, LOCAL_SECRET, url_override=v.url)
    """

    def __init__(
        self,
        config: VenueConfig | Config | None = None,
        market: Any = None,
        *,
        keys: dict[str, str] | None = None,
    ) -> None:
        slippage_cfg = config.execution.slippage if isinstance(config, Config) else None
        fills = FillSettings.from_config(config if isinstance(config, Config) else None)
        if isinstance(config, Config):
            config = config.venue
        self.config = config or VenueConfig()
        self.market = _as_replay_market(market) if market is not None else load_market(self.config)
        start = parse_time("venue.replay_start", self.config.replay_start) if self.config.replay_start \
            else self.market.start_ns
        self.faults = Faults(self.config.faults)
        self.keys = KeyRing(keys)
        self.limiter = WindowLimiter(self.config.rate_limit_per_minute)
        self.tapes = Tapes(self.market)
        clock = ReplayClock(start, None if self.config.speed == "max" else float(self.config.speed))
        self.broker = Broker(self.market, clock, self.config.cash,
                             self._slippage(slippage_cfg) if self.config.impact else None, fills)
        self.sends = SendLog() if self.config.record_sends else None
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def _slippage(self, config: SlippageConfig | None) -> SlippageModel:
        """The fills' slippage model, with ADV and daily volatility from the replayed daily bars."""
        model = SlippageModel(config)
        model.learn_from_daily_bars(self.market.bars(Timeframe(1, "Day")).frame)
        return model

    @property
    def clock(self) -> ReplayClock:
        return self.broker.clock

    @clock.setter
    def clock(self, clock: ReplayClock) -> None:
        """Share one market clock between venues (set before `start`)."""
        self.broker.clock = clock

    # ------------------------------------------------------------------------------------ app
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 20)
        track_sockets(app)
        cfg = self.config
        until = self.clock if cfg.history_until_clock else None
        app.add_routes(MarketDataApi(self.market, self.faults, until).routes())
        app.add_routes(TradingApi(self.broker).routes())
        app.add_routes(FinnhubApi(self.market, {LOCAL_FINNHUB_TOKEN}, cfg.finnhub_rate_limit_per_minute)
                       .routes())
        app.add_routes([
            web.get("/venue/info", self._info),
            web.post("/venue/faults", self._set_faults),
            web.delete("/venue/faults", self._clear_faults),
            web.post("/venue/clock", self._advance),
            web.get("/venue/sends", self._sends),
            web.delete("/venue/sends", self._sends),
        ])
        app.add_routes(TradingStream(self.broker, self.keys, self.faults,
                                     auth_timeout_s=cfg.stream_auth_timeout_s,
                                     tick_s=cfg.stream_tick_ms / 1000).routes())
        app.add_routes(PolygonStream(self.clock, self.tapes, self.keys, self.faults,
                                     auth_timeout_s=cfg.stream_auth_timeout_s,
                                     batch=cfg.stream_batch, sends=self.sends,
                                     tick_s=cfg.stream_tick_ms / 1000).routes())
        # last: `/v2/{feed}` would otherwise shadow `/v2/account` and friends
        app.add_routes(AlpacaStream(self.clock, self.tapes, self.keys, self.faults,
                                    auth_timeout_s=cfg.stream_auth_timeout_s,
                                    max_symbols=cfg.stream_max_symbols, batch=cfg.stream_batch,
                                    connections_per_key=cfg.stream_connections_per_key,
                                    sends=self.sends, tick_s=cfg.stream_tick_ms / 1000).routes())
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        streaming = request.headers.get("Upgrade", "").lower() == "websocket"
        if streaming or path.startswith("/venue/"):
            return await handler(request)
        try:
            fault, latency = self.faults.http(dict(request.query))
        except ValueError as e:
            return ApiError(422, 42210000, str(e)).response()
        if latency > 0:
            await asyncio.sleep(latency)
        alpaca = path.startswith("/v2/")
        key = request.headers.get("APCA-API-KEY-ID")
        if alpaca and not self.keys.check(key, request.headers.get("APCA-API-SECRET-KEY")):
            return UNAUTHORIZED.response()
        if fault is not None:
            if fault.kind == "drop":
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
            if fault.kind == "429":
                _, headers = self.limiter.hit(key or "")
                reset = time.time() + self.faults.config.http_429_reset_s
                headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(math.ceil(reset))})
                return ApiError(429, 42910000, "too many requests").response(headers)
            return ApiError(fault.status, 50010000, "internal server error (injected fault)").response()
        headers: dict[str, str] = {}
        if alpaca:
            allowed, headers = self.limiter.hit(key or "")
            if not allowed:
                return ApiError(429, 42910000, "too many requests").response(headers)
        try:
            response = await handler(request)
        except ApiError as e:
            response = e.response()
        response.headers.update(headers)
        return response

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"urls": self.urls, "now": self.clock.now_ns(), "speed": self.config.speed,
             "market": self.market.describe(), "symbols": self.market.names,
             "faults": self.faults.config.model_dump()},
            dumps=lambda x: orjson.dumps(x).decode(),
        )

    async def _set_faults(self, request: web.Request) -> web.Response:
        try:
            cfg = self.faults.set(**orjson.loads(await request.read()))
        except (ValueError, TypeError) as e:
            return web.json_response({"error": str(e)}, status=422)
        return web.json_response(cfg.model_dump())

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response(self.faults.config.model_dump())

    async def _sends(self, request: web.Request) -> web.Response:
        """GET: the send log (`SendLog.export`) as JSON; DELETE: empty it."""
        if self.sends is None:
            return web.json_response({"error": "the send log is off: set venue.record_sends"}, status=409)
        if request.method == "DELETE":
            self.sends.clear()
            return web.json_response({"connections": []})
        body = orjson.dumps({"connections": self.sends.export()}, option=orjson.OPT_SERIALIZE_NUMPY)
        return web.Response(body=body, content_type="application/json")

    async def _advance(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            self.clock.advance_to(parse_time("to", body["to"]))
        except ApiError as e:
            return e.response()
        except (ValueError, KeyError, TypeError) as e:
            return web.json_response({"error": f"expected {{'to': RFC 3339}}: {e}"}, status=422)
        # what the moved market fills happens now, as on a real venue: its trade_updates go out at once
        # rather than at the trading stream's next tick or the client's next REST call
        self.broker.sync()
        return web.json_response({"now": self.clock.now_ns()})

    # ------------------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        if self.port is None:
            raise StateError("venue is not started")
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}"

    @property
    def urls(self) -> dict[str, str]:
        base = self.url
        ws = base.replace("http://", "ws://")
        return {
            "alpaca_data": base, "alpaca_trading": base, "alpaca_stream": f"{ws}/v2/iex",
            "polygon_stream": f"{ws}/stocks", "finnhub": f"{base}/api/v1",
            "alpaca_trading_stream": f"{ws}/stream",
        }

    async def _start_async(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, backlog=1024)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]  # the bound port when port=0
        self.port = int(sock.getsockname()[1])

    def start(self) -> Venue:
        """Serve on a background thread; returns once the socket is listening."""
        if self._thread is not None:
            raise StateError("venue already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="hybridtrader-venue", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start_async(), loop).result(timeout=60)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        self._loop = self._thread = self._runner = None
        self.port = None

    def serve(self, on_ready: Any = None) -> None:
        """Serve in the foreground until interrupted; `on_ready(venue)` runs once listening."""

        async def main() -> None:
            await self._start_async()
            if on_ready is not None:
                on_ready(self)
            try:
                await asyncio.Event().wait()
            finally:
                if self._runner is not None:
                    await self._runner.cleanup()

        asyncio.run(main())

    def __enter__(self) -> Venue:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------- test controls
    def set_faults(self, **changes: Any) -> None:
        self.faults.set(**changes)

    def clear_faults(self) -> None:
        self.faults.clear()


@contextlib.contextmanager
def service_urls(config: Config, needs: tuple[str, ...] = ("alpaca_data", "alpaca_trading", "finnhub")
                 ) -> Iterator[dict[str, str]]:
    """The configured service URLs (keys alpaca_data, alpaca_trading, finnhub); when one of `needs` is
    unset (None = the local venue), a venue is started in-process for the duration and its URLs fill in."""
    a, f = config.alpaca, config.finnhub
    urls = {"alpaca_data": a.data_url, "alpaca_trading": a.trading_url, "finnhub": f.url}
    if all(urls[k] for k in needs):
        yield {k: str(v) for k, v in urls.items() if v}
        return
    with Venue(config) as venue:
        local = venue.urls
        yield {k: str(v) if v else local[k] for k, v in urls.items()}
