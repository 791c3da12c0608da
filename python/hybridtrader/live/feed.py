"""The node's clock and feed when it trades the local venue's replayed market in lockstep.

`VenueClock` is the venue's replay clock, moved by the node (`POST /venue/clock`): market time only
passes when the node has finished a bar time, so a node that is killed and restarted finds the market
where it left it, and a run is the same however fast the machine is. `--speed` paces it against the wall
(market seconds per wall second).

`ReplayFeed` yields one `BarBatch` per bar time: the 1-minute bars of every symbol for [t, t + 1 min),
fetched over REST once the clock has passed t + 1 min (the venue serves no bar before its interval ends:
`venue.history_until_clock`). Bar times up to `resume_ns` (the journal's cursor after a restart) are the
node's past: fetched a session at a time and flagged `replaying`, so the engine rebuilds its state from
them without sending anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date

import numpy as np
import polars as pl
import requests

from hybridtrader.data.alpaca_client import AlpacaClient, FetchError
from hybridtrader.engine.events import BarBatch
from hybridtrader.errors import BrokerError, DataError
from hybridtrader.execution.rate_limiter import RateLimitError
from hybridtrader.market.calendar import session_bounds
from hybridtrader.market.schema import BAR_SCHEMA
from hybridtrader.market.timeconv import NS_PER_MINUTE, NS_PER_SECOND, rfc3339, utc_ns


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
        stop: threading.Event | None = None,
        every_ns: int = NS_PER_MINUTE,
    ) -> None:
        self.data, self.clock = data, clock
        self.symbols, self.sessions = symbols, sessions
        self.resume_ns = resume_ns
        self.speed = speed
        self.stop = stop or threading.Event()
        self.every_ns = every_ns
        self.replaying = False
        self.last_data_ns = 0
        self.fetch_errors = 0
        self.error = ""  # the last failed fetch
        self._wall0: float | None = None
        self._market0 = 0

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

    def _pace(self, market_ns: int) -> None:
        """Wait until the wall clock allows market time `market_ns` at `speed` (or a stop)."""
        if self.speed is None:
            return
        if self._wall0 is None:
            self._wall0, self._market0 = time.monotonic(), market_ns
            return
        due = self._wall0 + (market_ns - self._market0) / NS_PER_SECOND / self.speed
        wait = due - time.monotonic()
        if wait > 0:
            self.stop.wait(wait)

    def batches(self) -> Iterator[BarBatch]:
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
            self.replaying = False
            for t in times[len(past) :]:
                if self.stop.is_set():
                    return
                close = t + self.every_ns
                self._pace(close)
                if self.stop.is_set():
                    return
                self.clock.advance_to(close)
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
