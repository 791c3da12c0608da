"""The node's clocks and feeds: the wall clock and the live stream (trading in real time), or the local
venue's replay clock and its REST bars in lockstep.

`WallClock` is time as it passes: UTC wall time, or (to trade a local venue serving its market faster than
real time) market time = origin + elapsed wall time x speed. `StreamFeed` yields one `BarBatch` per bar
time of the trading sessions from the live trade stream (`StreamingAdapter`: bars built from trades, only
closed ones, gaps rebuilt from REST, failover between sources), once the clock has passed the bar's close
plus the stream's watermark and a grace for the bars to arrive. Bars that arrive after their bar time was
handed to the engine are counted (`late_bars`) and not traded: the engine never goes back in time.

Lockstep: `VenueClock` is the venue's replay clock, moved by the node (`POST /venue/clock`): market time only
passes when the node has finished a bar time, so a node that is killed and restarted finds the market
where it left it, and a run is the same however fast the machine is. The node paces it against the wall
on trading time (the nights and weekends between sessions take no wall time): `speed` market seconds of
bar times per wall second, or evenly over what is left until a wall-clock deadline (`finish_by`).

`ReplayFeed` yields one `BarBatch` per bar time: the 1-minute bars of every symbol for [t, t + 1 min),
fetched over REST once the clock has passed t + 1 min (the venue serves no bar before its interval ends:
`venue.history_until_clock`). Bar times up to `resume_ns` (the journal's cursor after a restart) are the
node's past: fetched a session at a time and flagged `replaying`, so the engine rebuilds its state from
them without sending anything.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import numpy as np
import polars as pl
import requests

from hybridtrader.config import Config
from hybridtrader.data.alpaca_client import AlpacaClient, FetchError
from hybridtrader.engine.events import BarBatch
from hybridtrader.errors import BrokerError, DataError
from hybridtrader.execution.rate_limiter import RateLimitError
from hybridtrader.market.calendar import session_bounds
from hybridtrader.market.schema import BAR_SCHEMA
from hybridtrader.market.timeconv import NS_PER_MINUTE, NS_PER_SECOND, rfc3339, utc_ns
from hybridtrader.stream.adapter import StreamingAdapter

log = logging.getLogger(__name__)


class WallClock:
    """The engine's Clock as time passes. `WallClock()` is UTC wall time; `WallClock(origin_ns, speed)`
    is market time origin_ns + (wall seconds since construction) x speed x 1e9 (a local venue serving its
    market `speed` times faster than real time). `advance_to` waits until the time has come (returns
    early when `stop` is set); it never moves time."""

    def __init__(
        self, origin_ns: int | None = None, speed: float = 1.0, stop: threading.Event | None = None
    ) -> None:
        if not speed > 0:
            raise ValueError(f"WallClock: speed must be > 0, got {speed!r}")
        self.origin_ns, self.speed = origin_ns, speed
        self.stop = stop or threading.Event()
        self._wall0 = time.monotonic()

    def now_ns(self) -> int:
        if self.origin_ns is None:
            return time.time_ns()
        return self.origin_ns + int((time.monotonic() - self._wall0) * self.speed * NS_PER_SECOND)

    def wall_seconds(self, market_ns: int) -> float:
        """Wall seconds that `market_ns` of this clock's time take."""
        return market_ns / NS_PER_SECOND / self.speed

    def advance_to(self, ts_ns: int) -> None:
        while not self.stop.is_set():
            wait = self.wall_seconds(ts_ns - self.now_ns())
            if wait <= 0:
                return
            self.stop.wait(min(wait, 1.0))  # re-read the clock: wall time may be stepped meanwhile


class StreamFeed:
    """Bars per bar time of `sessions` for `symbols` from the live trade stream (Alpaca's data stream at
    `stream_url`, with its keys), on a thread running the stream's event loop; `start()` connects and
    subscribes, `close()` stops it. Bar times begun before the feed starts are not traded.
    `last_data_ns` is the close of the last bar time that had bars (for staleness); `error` names the
    stream's sources that were down at the last bar time without bars."""

    replaying = False  # the past cannot be replayed in real time

    def __init__(
        self,
        config: Config,
        clock: WallClock,
        symbols: list[str],
        sessions: list[date],
        *,
        stream_url: str,
        rest: AlpacaClient,
        stop: threading.Event | None = None,
    ) -> None:
        self.config, self.clock = config, clock
        self.symbols, self.sessions = symbols, sessions
        self.stream_url = stream_url
        self.stop = stop or threading.Event()
        self.adapter = StreamingAdapter(config, clock=clock.now_ns, rest=rest)
        self.every_ns = self.adapter.every_ns
        cfg = self.adapter.cfg
        # after a bar's close: the stream's watermark (market time), then a few flushes (wall time)
        self.watermark_ns = cfg.watermark_ms * 1_000_000
        self.grace_s = 3 * cfg.flush_interval_ms / 1000 + 0.05
        self.last_data_ns = 0
        self.late_bars = 0
        self.error = ""
        self._bars: queue.SimpleQueue[pl.DataFrame] = queue.SimpleQueue()
        self._pending: list[pl.DataFrame] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # called with a bar time's close once the wall clock is past it, inside the grace for its bars
        self.on_clock: Callable[[int], None] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        """Connect to the stream and subscribe the symbols' trades; StreamError when it cannot."""
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="live-stream", daemon=True)
        self._thread.start()

        async def handler(frame: pl.DataFrame) -> None:
            self._bars.put(frame)

        async def connect() -> None:
            self.adapter.on_bar(handler)
            await self.adapter.connect_alpaca(self.config.alpaca.feed, url=self.stream_url)
            await self.adapter.subscribe_trades(self.symbols)

        asyncio.run_coroutine_threadsafe(connect(), loop).result(timeout_s)

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.adapter.close(), loop).result(10.0)
        except Exception as e:  # closing must not hide why the node stopped
            log.warning("closing the stream: %s", e)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._loop = self._thread = None

    def stats(self) -> dict[str, Any]:
        """What `live status` shows of the stream: bars delivered (backfilled from REST), bars too late to
        trade, reconnects and failovers."""
        st = self.adapter.stats()
        keys = ("bars", "bars_backfilled", "reconnects", "failovers")
        return {**{k: st[k] for k in keys}, "late_bars": self.late_bars, "active": st["active"]}

    def bar_times(self, session: date) -> range:
        open_dt, close_dt = session_bounds(session)
        return range(utc_ns(open_dt), utc_ns(close_dt), self.every_ns)

    def _take(self, t: int) -> pl.DataFrame:
        """The closed bars of bar time `t` received so far (later ones stay pending; earlier ones are
        late), sorted by symbol."""
        while True:
            try:
                self._pending.append(self._bars.get_nowait())
            except queue.Empty:
                break
        if not self._pending:
            return pl.DataFrame(schema=BAR_SCHEMA)
        frame = pl.concat(self._pending, how="vertical_relaxed").filter(~pl.col("partial"))
        ts = pl.col("ts").dt.epoch("ns")
        self.late_bars += frame.filter(ts < t).height
        self._pending = [frame.filter(ts > t)]
        now = frame.filter((ts == t) & pl.col("symbol").is_in(self.symbols))
        return now.select(list(BAR_SCHEMA)).cast(BAR_SCHEMA).unique("symbol", keep="last").sort("symbol")

    def batches(self) -> Iterator[BarBatch]:
        start = self.clock.now_ns()
        for session in self.sessions:
            for t in self.bar_times(session):
                if t < start:  # begun before the stream was subscribed: seen in part
                    continue
                close = t + self.every_ns
                self.clock.advance_to(close + self.watermark_ns)
                grace_end = time.monotonic() + self.grace_s
                if self.on_clock is not None:  # the broker's news up to the close, while the bars arrive
                    self.on_clock(close)
                if self.stop.wait(max(0.0, grace_end - time.monotonic())):
                    return
                bars = self._take(t)
                if bars.height:
                    self.last_data_ns = close
                else:
                    self.error = self._trouble()
                yield BarBatch(session, bars, self.every_ns)

    def _trouble(self) -> str:
        """The stream's sources that are not live, with their state."""
        sources = self.adapter.stats()["sources"]
        return ", ".join(f"{n} {s['state']}" for n, s in sources.items() if s["state"] != "live")


class VenueClock:
    """The local venue's replay clock (speed "max"), advanced by the node; never moves backwards."""

    def __init__(self, venue_url: str, timeout_s: float = 10.0) -> None:
        self.url = venue_url.rstrip("/")
        self.http = requests.Session()
        self.timeout_s = timeout_s
        info = self.http.get(f"{self.url}/venue/info", timeout=timeout_s)
        info.raise_for_status()
        self._now = int(info.json()["now"])

    def now_ns(self) -> int:
        return self._now

    def advance_to(self, ts_ns: int) -> None:
        if ts_ns <= self._now:
            return
        r = self.http.post(f"{self.url}/venue/clock", json={"to": rfc3339(ts_ns)}, timeout=self.timeout_s)
        if r.status_code != 200:
            raise BrokerError(f"venue clock at {self.url}: {r.status_code} {r.text[:200]}")
        self._now = int(r.json()["now"])


class ReplayFeed:
    """Bars per bar time of `sessions` for `symbols`, in lockstep with `clock`. `replaying` tells whether
    the batch last yielded is from before `resume_ns`; `last_data_ns` is the market time the last
    non-empty batch was known (for staleness); a failed fetch yields an empty batch."""

    def __init__(
        self,
        data: AlpacaClient,
        clock: VenueClock,
        symbols: list[str],
        sessions: list[date],
        *,
        resume_ns: int = 0,
        speed: float | None = None,
        finish_by: float | None = None,
        stop: threading.Event | None = None,
        every_ns: int = NS_PER_MINUTE,
    ) -> None:
        """Paced (see the module documentation) at `speed`, else to end by `finish_by` (a time.monotonic()
        deadline: the speed is set at the first bar time traded, from the bar times left and the wall time
        left; none left: unpaced), else unpaced."""
        self.data, self.clock = data, clock
        self.symbols, self.sessions = symbols, sessions
        self.resume_ns = resume_ns
        self.speed = speed
        self.finish_by = finish_by
        self.stop = stop or threading.Event()
        self.every_ns = every_ns
        self.replaying = False
        self.last_data_ns = 0
        self.fetch_errors = 0
        self.error = ""  # the last failed fetch
        self._wall0: float | None = None
        self._paced = 0  # bar times traded since _wall0
        # called with the new time once the clock has moved for a bar time to be traded, before its bars
        # are fetched (the node takes the broker's updates then: `JournaledBroker.prepoll`)
        self.on_clock: Callable[[int], None] | None = None

    def bar_times(self, session: date) -> range:
        open_dt, close_dt = session_bounds(session)
        return range(utc_ns(open_dt), utc_ns(close_dt), self.every_ns)

    def _bars(self, start_ns: int, end_ns: int) -> pl.DataFrame:
        """Bars with start in [start_ns, end_ns], sorted by (ts, symbol); empty when the fetch failed."""
        try:
            frame = self.data.get_bars(self.symbols, "1Min", rfc3339(start_ns), rfc3339(end_ns))
        except (FetchError, RateLimitError, OSError, DataError) as e:
            self.fetch_errors += 1
            self.error = str(e)
            return pl.DataFrame(schema=BAR_SCHEMA)
        return frame.sort("ts", "symbol")

    def _pace(self, left: int) -> None:
        """Before trading a bar time (`left` of the run's bar times left, this one included): wait until
        the wall clock allows one more bar time at `speed` (or a stop). Trading time only: bar time k after
        the first is due k x every_ns / speed wall seconds after it, whatever market time lies between."""
        if self._wall0 is None:
            self._wall0 = time.monotonic()
            if self.speed is None and self.finish_by is not None and self.finish_by > self._wall0:
                self.speed = left * self.every_ns / NS_PER_SECOND / (self.finish_by - self._wall0)
            return
        if self.speed is None:
            return
        self._paced += 1
        wait = self._wall0 + self._paced * self.every_ns / NS_PER_SECOND / self.speed - time.monotonic()
        if wait > 0:
            self.stop.wait(wait)

    def batches(self) -> Iterator[BarBatch]:
        left = sum(len(self.bar_times(s)) for s in self.sessions)
        for session in self.sessions:
            times = self.bar_times(session)
            past = [t for t in times if t + self.every_ns <= self.resume_ns]
            if past:
                self.replaying = True
                bars = self._bars(past[0], past[-1])
                ts = bars["ts"].dt.epoch("ns")
                for t, part in zip(past, _split(bars, ts, past), strict=True):
                    if part.height:
                        self.last_data_ns = t + self.every_ns
                    yield BarBatch(session, part, self.every_ns)
                left -= len(past)
            self.replaying = False
            for t in times[len(past) :]:
                if self.stop.is_set():
                    return
                close = t + self.every_ns
                self._pace(left)
                left -= 1
                if self.stop.is_set():
                    return
                self.clock.advance_to(close)
                if self.on_clock is not None:
                    self.on_clock(close)
                bars = self._bars(t, t)
                if bars.height:
                    self.last_data_ns = close
                yield BarBatch(session, bars, self.every_ns)


def _split(bars: pl.DataFrame, ts: pl.Series, times: list[int]) -> Iterator[pl.DataFrame]:
    """`bars` (sorted by ts) cut into one frame per bar time of `times`."""
    values = ts.to_numpy()
    cuts = np.searchsorted(values, np.asarray([*times, times[-1] + 1]), side="left")
    for i in range(len(times)):
        yield bars.slice(int(cuts[i]), int(cuts[i + 1] - cuts[i]))
