"""`StreamingAdapter`: Alpaca and Polygon trades/quotes into Rust-built bars, delivered to handlers.

    adapter = StreamingAdapter(config)

    @adapter.on_bar
    async def bars(frame: pl.DataFrame) -> None: ...

    await adapter.connect_alpaca(feed="iex")
    await adapter.subscribe_trades(["AAPL", "MSFT"])
    ...
    await adapter.close()        # flushes partial bars (flagged) and closes the sockets

Ticks of each frame go to the Rust `BarAggregator` in one `feed_many`; a timer closes bars at interval
end + watermark on the feed clock. Every connected source streams all the time (hot standby): only the
active one feeds the bars, and the adapter fails over to the next source in `alpaca.data_sources`
priority order when the active one is down or silent for `stale_after_s`, and back when the preferred
one recovers. Bars missed around a break are rebuilt from REST (see `sequencer`).

Handlers receive Polars frames: trades (symbol, ts, price, size) and quotes (symbol, ts, bid, ask,
bid_size, ask_size) one frame per websocket frame; bars (the bar columns + `partial`, `backfilled`)
one frame per batch of closed bars, in (ts, symbol) order; provider bars (what the provider itself
aggregates, Alpaca `b` / Polygon `AM`) go to `on_provider_bar`.

When it starts, the adapter freezes the objects alive at that moment out of the garbage collector's scans
(`gc.freeze`, `alpaca.data_sources.stream.gc_freeze`): otherwise a full collection over a large heap
stalls the loop, and every tick in flight, for tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Literal
from urllib.parse import urlparse

import polars as pl

from hybridtrader.config import Config, StreamConfig
from hybridtrader.credentials import alpaca_keys, polygon_key
from hybridtrader.errors import ConfigError, StreamError
from hybridtrader.market.timeconv import NS_PER_MS, NS_PER_SECOND, from_utc_ns
from hybridtrader.market.timeframe import parse_every
from hybridtrader.stream.connection import Connection, State, backoff_delay
from hybridtrader.stream.dispatch import (
    STOP,
    BlockingQueue,
    DropOldestQueue,
    Handler,
    Handlers,
    LatencyRecord,
    pump,
)
from hybridtrader.stream.messages import BAR_SCHEMA, Columns, Encoding, Frame
from hybridtrader.stream.providers import (
    AlpacaProtocol,
    Channel,
    PolygonProtocol,
    StreamProtocol,
    Subscriptions,
)
from hybridtrader.stream.sequencer import BarSequencer, Gap, bar_columns, engine_columns

log = logging.getLogger(__name__)

Clock = Callable[[], int]


def _stream_url(base: str | None, path: str, key: str) -> str:
    if base is None:
        raise ConfigError(f"{key} is not set: give the provider's stream URL or start the local venue")
    return base.rstrip("/") + path if urlparse(base).path in ("", "/") else base



def _frame_of_columns(parts: list[Columns]) -> pl.DataFrame:
    return Columns.concat(parts).frame()


class StreamingAdapter:
    """Streams trades and quotes from Alpaca and/or Polygon into bars. Use from one asyncio loop."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        every: str | None = None,
        clock: Clock | Literal["wall"] | None = "wall",
        rest: Any = None,
    ) -> None:
        """`clock`: the feed clock in UTC ns ("wall" = `time.time_ns`, a replay clock's `now_ns`, or None to
        let only the ticks' own timestamps move time). `rest`: an object with `get_bars(symbols, timeframe,
        start, end)` for gap backfill; by default `hybridtrader.data.AlpacaClient(config)`."""
        from hybridtrader.market.bars import BarAggregator

        self.config = config if config is not None else Config()
        self.cfg: StreamConfig = self.config.alpaca.data_sources.stream
        self.every = every or self.cfg.every
        self.every_ns, self.timeframe = parse_every(self.every)
        self._watermark_ns = self.cfg.watermark_ms * NS_PER_MS
        if clock == "wall":
            clock = time.time_ns
        if clock is not None and not callable(clock):
            raise ConfigError(f"clock: expected 'wall', None or a callable returning UTC ns, got {clock!r}")
        self._clock: Clock | None = clock
        self._rest = rest
        self._agg = BarAggregator(every=self.every)
        self._seq = BarSequencer(self.every_ns)
        # symbol -> feed time its trades were unsubscribed: the bar open then is truncated (flagged partial)
        self._cut: dict[str, int] = {}
        self._subs = Subscriptions()
        ds = self.config.alpaca.data_sources
        self._priority = list(dict.fromkeys([ds.primary, *ds.secondary]))
        self._sources: dict[str, Connection] = {}
        self._down_since: dict[str, int] = {}
        self._active: str | None = None
        self._handlers = {k: Handlers(k) for k in ("trade", "quote", "bar", "provider_bar")}
        self._trade_q: BlockingQueue[Any] = BlockingQueue(self.cfg.trade_queue)
        self._quote_q: DropOldestQueue[Any] = DropOldestQueue(self.cfg.quote_queue)
        self._bar_q: BlockingQueue[Any] = BlockingQueue(self.cfg.bar_queue)
        self._pbar_q: BlockingQueue[Any] = BlockingQueue(self.cfg.bar_queue)
        self._latency = LatencyRecord(self.cfg.latency_samples)
        self._tasks: list[asyncio.Task[Any]] = []
        self._pumps: list[asyncio.Task[Any]] = []
        self._backfill_task: asyncio.Task[None] | None = None
        self._backfill_retry_at = 0.0
        self._max_ts = 0  # newest tick timestamp fed to the aggregator
        self._last_trade_frame_ns = 0  # perf_counter_ns of the last frame with trades (active source)
        self._started_ns = 0
        self._rate: deque[tuple[int, int]] = deque()
        self._closed = False
        self.counts = {
            "frames": 0,
            "messages": 0,
            "trades": 0,
            "quotes": 0,
            "provider_bars": 0,
            "malformed": 0,
            "unknown": 0,
            "standby_frames": 0,
            "failovers": 0,
            "failbacks": 0,
            "bars": 0,
            "bars_backfilled": 0,
            "bars_partial": 0,
            "backfill_failures": 0,
        }
        self.unknown_types: dict[str, int] = {}

    # ------------------------------------------------------------------------------ handlers
    def on_trade(self, handler: Handler) -> Handler:
        """Register a trade handler (also usable as `@adapter.on_trade`): called with one frame per batch."""
        return self._handlers["trade"].add(handler)

    def on_quote(self, handler: Handler) -> Handler:
        return self._handlers["quote"].add(handler)

    def on_bar(self, handler: Handler) -> Handler:
        """Bars built from the trades (+ REST backfill), with `partial` and `backfilled` flags."""
        return self._handlers["bar"].add(handler)

    def on_provider_bar(self, handler: Handler) -> Handler:
        """Bars aggregated by the provider itself (subscribe_bars)."""
        return self._handlers["provider_bar"].add(handler)

    # --------------------------------------------------------------------------- connections
    async def connect_alpaca(
        self,
        feed: Literal["iex", "sip", "delayed_sip", "test"] = "iex",
        *,
        url: str | None = None,
        encoding: Encoding = "json",
    ) -> None:
        """Connect (and authenticate) to the Alpaca stream `/v2/{feed}`; `url` overrides alpaca.stream_url."""
        if feed not in ("iex", "sip", "delayed_sip", "test"):
            raise ConfigError(f"feed must be one of iex, sip, delayed_sip, test; got {feed!r}")
        where = _stream_url(url or self.config.alpaca.stream_url, f"/v2/{feed}", "alpaca.stream_url")
        proto = AlpacaProtocol(where, *alpaca_keys(self.config, where), encoding)
        await self._connect("alpaca", proto)

    async def connect_polygon(self, *, url: str | None = None) -> None:
        """Connect (and authenticate) to the Polygon stocks stream; `url` overrides its stream_url."""
        p = self.config.alpaca.data_sources.polygon
        where = _stream_url(url or p.stream_url, "/stocks", "alpaca.data_sources.polygon.stream_url")
        proto = PolygonProtocol(where, polygon_key(self.config, where))
        await self._connect("polygon", proto)

    async def _connect(self, name: str, proto: StreamProtocol) -> None:
        if self._closed:
            raise StreamError("the adapter is closed")
        if name in self._sources:
            raise StreamError(f"{name} is connected already")
        if name not in self._priority:
            self._priority.append(name)
        self._start()
        conn = Connection(name, proto, self._subs, self._on_frame, self.cfg, self._on_state)
        self._sources[name] = conn
        conn.start()
        try:
            await conn.wait_live(self.cfg.open_timeout_s)
        except BaseException:
            del self._sources[name]
            await conn.close()
            raise
        if self._active is None or (
            self._rank(name) < self._rank(self._active) and not self._sources[self._active].live
        ):
            self._active = name

    def _rank(self, name: str) -> int:
        return self._priority.index(name)

    # ------------------------------------------------------------------------- subscriptions
    async def subscribe_trades(self, symbols: Iterable[str]) -> None:
        await self._change("subscribe", "trades", symbols)

    async def subscribe_quotes(self, symbols: Iterable[str]) -> None:
        await self._change("subscribe", "quotes", symbols)

    async def subscribe_bars(self, symbols: Iterable[str]) -> None:
        """Provider-built bars (delivered to `on_provider_bar`)."""
        await self._change("subscribe", "bars", symbols)

    async def unsubscribe_trades(self, symbols: Iterable[str]) -> None:
        await self._change("unsubscribe", "trades", symbols)

    async def unsubscribe_quotes(self, symbols: Iterable[str]) -> None:
        await self._change("unsubscribe", "quotes", symbols)

    async def unsubscribe_bars(self, symbols: Iterable[str]) -> None:
        await self._change("unsubscribe", "bars", symbols)

    async def _change(
        self, action: Literal["subscribe", "unsubscribe"], channel: Channel, symbols: Iterable[str]
    ) -> None:
        if isinstance(symbols, str):
            symbols = [symbols]
        syms = [s.strip().upper() for s in symbols]
        bad = [s for s in syms if not s or (not s.replace(".", "").replace("/", "").isalnum() and s != "*")]
        if bad or not syms:
            raise ConfigError(f"symbols: expected ticker symbols, got {list(symbols)!r}")
        current = self._subs.get(channel)
        change = Subscriptions()
        delta = set(syms) - current if action == "subscribe" else set(syms) & current
        change.get(channel).update(delta)
        if action == "subscribe":
            current.update(delta)
            for s in delta:
                self._cut.pop(s, None)
        else:
            current.difference_update(delta)
            if channel == "trades":
                self._cut.update(dict.fromkeys(delta - {"*"}, self.now_ns()))
        if action == "subscribe" and channel == "trades" and delta and self._clock is not None:
            # New symbols join mid-bar: their first bar would miss ticks; it is rebuilt from REST like a gap.
            self._seq.open_gap(self.now_ns())
        for conn in self._sources.values():
            await conn.update(action, change)

    @property
    def subscriptions(self) -> Subscriptions:
        return self._subs

    @property
    def active_source(self) -> str | None:
        return self._active

    # ---------------------------------------------------------------------------- the frames
    async def _on_frame(self, conn: Connection, frame: Frame, recv_ns: int) -> None:
        if conn.name != self._active:
            self.counts["standby_frames"] += 1
            return
        c = self.counts
        c["frames"] += 1
        c["messages"] += frame.messages
        if frame.malformed:
            c["malformed"] += frame.malformed
            if self._subs.trades:
                # The garbage may have been trades: the bars around it are rebuilt from REST.
                self._break()
        if frame.unknown:
            for t, n in frame.unknown.items():
                c["unknown"] += n
                self.unknown_types[t] = self.unknown_types.get(t, 0) + n
        tr = frame.trades
        if tr is not None:
            d = tr.data
            ts = d["ts"]
            c["trades"] += len(ts)
            if self._seq.open:
                # Whatever the server sent before this frame is lost; with a clock, "now" bounds where the
                # server resumed even if this frame is an older one still in flight.
                self._seq.close_gap(max(int(ts.min()), self.now_ns()))
            # Bars completed by these ticks wait in the aggregator for the timer's flush: one batch of work
            # per tick instead of per frame.
            self._agg.feed_many(d["symbol"], ts, d["price"], d["size"])
            mx = int(ts.max())
            if mx > self._max_ts:
                self._max_ts = mx
            self._last_trade_frame_ns = recv_ns
            if self._handlers["trade"]:
                await self._trade_q.put((tr, recv_ns))
        if frame.quotes is not None:
            c["quotes"] += len(frame.quotes)
            if self._handlers["quote"]:
                self._quote_q.put_nowait((frame.quotes, recv_ns))
        if frame.bars is not None:
            c["provider_bars"] += len(frame.bars)
            if self._handlers["provider_bar"]:
                await self._pbar_q.put((frame.bars, recv_ns))

    def _flag_cut(self, bars: Columns) -> None:
        """Flag as partial the bar of each symbol whose trades were unsubscribed in the middle of it."""
        d = bars.data
        partial = d["partial"].copy()  # the engine's flag arrays may share memory
        for i, (symbol, ts) in enumerate(zip(d["symbol"], d["ts"], strict=True)):
            cut = self._cut.get(symbol)
            if cut is not None and ts <= cut < ts + self.every_ns:
                partial[i] = True
                del self._cut[symbol]
        d["partial"] = partial

    async def _emit(self, bars: Columns) -> None:
        if not len(bars):
            return
        if self._cut:
            self._flag_cut(bars)
        c = self.counts
        c["bars"] += len(bars)
        c["bars_backfilled"] += int(bars.data["backfilled"].sum())
        c["bars_partial"] += int(bars.data["partial"].sum())
        if self._handlers["bar"]:
            await self._bar_q.put((bars, 0))

    def _on_state(self, conn: Connection, state: State) -> None:
        if state == "live":
            self._down_since.pop(conn.name, None)
            return
        if conn.name not in self._down_since:
            self._down_since[conn.name] = time.perf_counter_ns()
            if conn.name == self._active and not self._closed:
                self._break()

    def _break(self) -> None:
        """Ticks may have been lost from now on: open a gap after the last tick seen (or, with a clock and
        no tick yet, from now). With neither, nothing has been built yet, so there is nothing to repair."""
        last = self._max_ts or (self.now_ns() if self._clock is not None else 0)
        if last:
            self._seq.open_gap(last)

    def now_ns(self) -> int:
        """The feed clock: the configured clock, never behind the newest tick seen."""
        return max(self._clock(), self._max_ts) if self._clock is not None else self._max_ts

    # -------------------------------------------------------------------------------- timer
    def _start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        if self.cfg.gc_freeze:  # see StreamConfig.gc_freeze: a latency measure, process-wide
            gc.collect()
            gc.freeze()
        self._started_ns = time.perf_counter_ns()
        ticks = _frame_of_columns  # trades, quotes and bars alike travel as numpy columns
        self._pumps = [
            loop.create_task(pump(self._trade_q, self._handlers["trade"], self._latency, ticks)),
            loop.create_task(pump(self._quote_q, self._handlers["quote"], self._latency, ticks)),
            loop.create_task(pump(self._bar_q, self._handlers["bar"], None, ticks)),
            loop.create_task(pump(self._pbar_q, self._handlers["provider_bar"], None, ticks)),
        ]
        self._tasks = [loop.create_task(self._timer(), name="stream-timer")]

    async def _timer(self) -> None:
        step = self.cfg.flush_interval_ms / 1000.0
        while True:
            await asyncio.sleep(step)
            try:
                await self._tick()
            except Exception:  # the timer must outlive a bad tick; the error is logged with its traceback
                log.exception("stream timer")

    def _flush_until(self) -> int:
        """Bars ending by this feed time are closed: the clock less the watermark, but while trades are
        flowing never past the newest trade received. A stream running late behind the clock (a slow
        server, a stalled process) then closes no bar before its trades have arrived; a quiet one (no trade
        frame for a watermark's worth of wall time) is closed by the clock alone."""
        until = self.now_ns() - self._watermark_ns
        if (
            self._clock is not None
            and time.perf_counter_ns() - self._last_trade_frame_ns < self._watermark_ns
        ):
            until = min(until, self._max_ts)
        return until

    async def _tick(self) -> None:
        self._check_sources()
        await self._flush(self._flush_until())
        self._maybe_backfill()
        now = time.perf_counter_ns()
        self._rate.append((now, self.counts["messages"]))
        while len(self._rate) > 2 and now - self._rate[0][0] > 5 * NS_PER_SECOND:
            self._rate.popleft()

    async def _flush(self, until_ns: int) -> None:
        if until_ns <= 0:
            return
        bars = self._agg.flush_columns(until_ns)  # those completed by ticks, then those now due
        if bars is not None:
            await self._emit(self._seq.stream_bars([engine_columns(bars)]))

    # ----------------------------------------------------------------------------- failover
    def _healthy(self, conn: Connection, now: int, stale_ns: int) -> bool:
        return conn.live and now - max(conn.last_data_ns, conn.live_since_ns) < stale_ns

    def _check_sources(self) -> None:
        if self._active is None or len(self._sources) < 2:
            return
        now = time.perf_counter_ns()
        stale_ns = int(self.cfg.stale_after_s * NS_PER_SECOND)
        active = self._sources[self._active]
        ranked = sorted(self._sources, key=self._rank)
        down_for = now - self._down_since[active.name] if active.name in self._down_since else 0
        silent_for = now - max(active.last_data_ns, active.live_since_ns) if active.live else 0
        flaps = sum(1 for t in active.drop_times if now - t < stale_ns)
        if down_for >= stale_ns or silent_for >= stale_ns or flaps >= self.cfg.flap_drops:
            why = (
                f"{flaps} drops within {self.cfg.stale_after_s:g}s"
                if flaps >= self.cfg.flap_drops
                else f"{'down' if down_for else 'silent'} for "
                f"{max(down_for, silent_for) / NS_PER_SECOND:.1f}s"
            )
            for name in ranked:
                if name != active.name and self._healthy(self._sources[name], now, stale_ns):
                    self._switch(name, f"{active.name} {why}")
                    return
            return
        for name in ranked:
            if name == active.name:
                return
            conn = self._sources[name]
            # Back to a preferred source once it has been up and delivering for stale_after_s.
            if (
                conn.live
                and now - conn.live_since_ns >= stale_ns
                and conn.last_data_ns
                and now - conn.last_data_ns < stale_ns
            ):
                self._switch(name, f"{name} recovered")
                return

    def _switch(self, name: str, why: str) -> None:
        old = self._active
        log.warning("stream source %s -> %s (%s)", old, name, why)
        if old is not None and self._rank(name) < self._rank(old):
            self.counts["failbacks"] += 1
        else:
            self.counts["failovers"] += 1
        self._active = name
        self._break()

    # ----------------------------------------------------------------------------- backfill
    def _maybe_backfill(self) -> None:
        if self._backfill_task is not None and not self._backfill_task.done():
            return
        if time.monotonic() < self._backfill_retry_at:
            return
        gap = self._seq.due(self.now_ns(), self._watermark_ns)
        if gap is not None:
            self._backfill_task = asyncio.get_running_loop().create_task(self._backfill(gap))

    def _rest_client(self) -> Any:
        if self._rest is None:
            from hybridtrader.data.alpaca_client import AlpacaClient

            self._rest = AlpacaClient(self.config)
        return self._rest

    async def _backfill(self, gap: Gap) -> None:
        subscribed = self._subs.trades
        # With "*" the symbols are whatever the stream has delivered.
        symbols = sorted((subscribed | set(self._agg.symbols) if "*" in subscribed else subscribed) - {"*"})
        assert gap.last is not None
        gap.fetching = True
        try:
            if symbols:
                rest = self._rest_client()
                start, end = from_utc_ns(gap.first), from_utc_ns(gap.last + self.every_ns - 1)
                bars = await asyncio.to_thread(rest.get_bars, symbols, self.timeframe, start, end)
            else:
                bars = pl.DataFrame(schema=BAR_SCHEMA)
        except Exception as e:  # any failure of the REST path: retry with backoff, bars stay held
            gap.attempts += 1
            self.counts["backfill_failures"] += 1
            delay = backoff_delay(gap.attempts, self.cfg.backoff, _RNG)
            log.warning(
                "backfill of %s..%s failed (%s); retrying in %.1fs",
                from_utc_ns(gap.first), from_utc_ns(gap.last), e, delay,
            )
            self._backfill_retry_at = time.monotonic() + delay
            return
        finally:
            gap.fetching = False
        await self._emit(self._seq.backfilled(gap, bars))

    # ------------------------------------------------------------------------------ shutdown
    async def close(self) -> None:
        """Stop streaming: close the sockets, emit the bars that are due, backfill closed gaps, then the
        partial bars (flagged `partial`), and let the handlers finish their queues."""
        if self._closed:
            return
        self._closed = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in self._sources.values()))
        if self._backfill_task is not None:
            await asyncio.gather(self._backfill_task, return_exceptions=True)
        if self._started_ns:
            await self._flush(self.now_ns() - self._watermark_ns)
            # Backfill the gaps' intervals that have ended (REST would also return the rest of a bar that is
            # still running); one try each, what REST cannot give is released by drain() below.
            last_closed = self._seq.floor(self.now_ns()) - self.every_ns
            for gap in list(self._seq.gaps):
                gap.last = last_closed if gap.last is None else min(gap.last, last_closed)
                if gap.last >= gap.first:
                    await self._backfill(gap)
            await self._emit(self._seq.drain())
            await self._emit(self._seq.stream_bars([bar_columns(self._agg.close(), partial=True)]))
        for q in (self._trade_q, self._bar_q, self._pbar_q):
            await q.put(STOP)
        self._quote_q.put_nowait(STOP)
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def __aenter__(self) -> StreamingAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --------------------------------------------------------------------------------- stats
    def stats(self) -> dict[str, Any]:
        """Counters and rates: messages (and messages_per_s over the last 5 s), frames, trades, quotes,
        bars delivered (bars_backfilled from REST, bars_partial at close), tick-to-handler latency_p50_us /
        latency_p99_us (frame off the socket -> trade/quote handler called), reconnects, failovers /
        failbacks, late ticks (dropped by the aggregator), malformed and unknown messages (unknown_types by
        type), handler_errors, bars_tainted / bars_duplicate (stream bars replaced / repeats dropped),
        gaps_pending, quotes_dropped and trade_queue_waits (slow-consumer policy), queue high-water marks,
        and per source its state, connects, drops and provider error codes."""
        c = dict(self.counts)
        now = time.perf_counter_ns()
        elapsed = (now - self._started_ns) / NS_PER_SECOND if self._started_ns else 0.0
        if len(self._rate) >= 2 and self._rate[-1][0] > self._rate[0][0]:
            (t0, m0), (t1, m1) = self._rate[0], self._rate[-1]
            rate = (m1 - m0) / ((t1 - t0) / NS_PER_SECOND)
        else:
            rate = c["messages"] / elapsed if elapsed > 0 else 0.0
        p50, p99 = self._latency.percentiles_us()
        agg = self._agg.stats()
        return {
            **c,
            "active": self._active,
            "elapsed_s": elapsed,
            "messages_per_s": rate,
            "latency_p50_us": p50,
            "latency_p99_us": p99,
            "reconnects": sum(max(0, s.connects - 1) for s in self._sources.values()),
            "late": int(agg["late"]),
            "unknown_types": dict(self.unknown_types),
            "handler_errors": sum(h.errors for h in self._handlers.values()),
            "bars_tainted": self._seq.tainted,
            "bars_duplicate": self._seq.duplicates,
            "gaps_pending": len(self._seq.gaps),
            "quotes_dropped": self._quote_q.dropped,
            "trade_queue_waits": self._trade_q.waits,
            "queue_high_water": {
                "trades": self._trade_q.high_water,
                "quotes": self._quote_q.high_water,
                "bars": self._bar_q.high_water,
            },
            "sources": {
                n: {"state": s.state, "connects": s.connects, "drops": s.drops, "errors": dict(s.errors)}
                for n, s in self._sources.items()
            },
        }


_RNG = random.Random()
