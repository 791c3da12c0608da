"""Plain helpers several test files share (import them: `from helpers import MIN, ny`)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.backtest.clock import SimClock
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.config import Config
from hybridtrader.engine.events import BarBatch
from hybridtrader.engine.trader import Trader, TraderResult
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market.calendar import NEW_YORK
from hybridtrader.strategy.model import Champion
from hybridtrader.strategy.rules import RuleStrategy

MIN = 60 * 10**9  # one minute in ns, written out (the tests' own reference, not the package's constant)
UTC_NS = pl.Datetime("ns", "UTC")


def ny(d: date, hh: int, mm: int, ss: int = 0) -> datetime:
    """An aware New York wall-clock time on day `d`."""
    return datetime(d.year, d.month, d.day, hh, mm, ss, tzinfo=NEW_YORK)


class LoopbackServer:
    """A TCP server on 127.0.0.1 handing each connection it accepts to `handle`, on a daemon thread of its
    own, until `close`."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self._handle = handle
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def close(self) -> None:
        self.server.close()


class LoopbackRelay:
    """A TCP relay on 127.0.0.1 to `target`: each chunk a client sends is given to `inspect` before it is
    passed on (so what `inspect` notes happened before the server saw the bytes); answers flow back as
    they are. `url` is its http:// address."""

    def __init__(self, target: tuple[str, int], inspect: Callable[[bytes], None]) -> None:
        self.target, self.inspect = target, inspect
        self.server = LoopbackServer(self._relay)
        self.url = f"http://127.0.0.1:{self.server.port}"

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()
        self._pump(client, upstream, True)

    def _pump(self, src: socket.socket, dst: socket.socket, to_server: bool) -> None:
        try:
            while data := src.recv(1 << 20):
                if to_server:
                    self.inspect(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def close(self) -> None:
        self.server.close()


class BarTimeFeed:
    """Sessions' bars one bar time per batch, as a live node's feed gives them."""

    def __init__(self, bars: pl.DataFrame) -> None:
        self.inner = FrameFeed(bars)

    def batches(self) -> Iterator[BarBatch]:
        for batch in self.inner.batches():
            for _, part in batch.bars.group_by("ts", maintain_order=True):
                yield BarBatch(batch.session, part, batch.every_ns)


def counting(base: type[RuleStrategy], config: Config, carry: bool, champion: Champion | None = None) -> Any:
    """A seed strategy counting the batches `advance` took (`.advanced`). With `carry=False` it carries
    nothing and keeps every bar since the warm-up as history, so the engine calls `prepare` on all of them
    every bar time: the backtest's features (Polars over the session with the warm-up in front),
    recomputed bar time by bar time."""

    class Counting(base):  # type: ignore[valid-type, misc]
        advanced = 0

        def advance(self, bars: pl.DataFrame) -> pl.DataFrame | None:
            frame = super().advance(bars) if carry else None
            self.advanced += frame is not None
            return frame

    strategy = Counting(config, champion)
    if not carry:
        strategy.history_bars = 10**6
    return strategy


def run_bar_times(
    cfg: Config, strategy: Any, bars: pl.DataFrame, warm: pl.DataFrame
) -> tuple[Trader, TraderResult]:
    """A Trader on the simulator running `strategy` over `bars` one bar time per batch, warmed up on
    `warm`."""
    sim = FillSimulator(FillSettings.from_config(cfg))
    trader = Trader(cfg, [strategy], BarTimeFeed(bars), SimBroker(sim), SimClock(), cash=1e6)
    trader.warm_up(warm)
    return trader, trader.run()


def assert_carried_trades_as_recomputed(
    base: type[RuleStrategy],
    cfg: Config,
    after: pl.DataFrame,
    warm: pl.DataFrame,
    min_orders: int,
    champion: Champion | None = None,
) -> tuple[Trader, Any]:
    """`base` run over `after` one bar time per batch twice, warmed up on `warm`: with its features recomputed
    by Polars every bar time, and carried from bar time to bar time; both give the same orders and fills
    (more than `min_orders`). The carried run's Trader and strategy."""
    polars, carried = (counting(base, cfg, carry, champion) for carry in (False, True))
    _, want = run_bar_times(cfg, polars, after, warm)
    trader, got = run_bar_times(cfg, carried, after, warm)
    assert polars.advanced == 0
    assert carried.advanced == after["ts"].n_unique() - 1  # the first bar time starts the state
    cols = ["client_order_id", "symbol", "side", "qty", "decision_ts"]
    assert want.orders.height > min_orders
    assert got.orders.select(cols).equals(want.orders.select(cols))
    assert got.fills.equals(want.fills)
    return trader, carried


def symbol_bars(symbol: str, n: int, seed: int, quotes: bool) -> pl.DataFrame:
    """`n` 1-minute bars of one symbol at cent prices (ties and unchanged closes exercise the RSI/DM
    branches), seeded; with bid/ask columns a cent around the close when `quotes`."""
    rng = np.random.default_rng(seed)
    close = np.round(40 * np.exp(np.cumsum(rng.normal(0, 0.004, n))), 2)
    frame = pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": (np.arange(n, dtype=np.int64) * 60 + 1_704_205_800) * 10**9,
            "open": np.round(close + rng.normal(0, 0.02, n), 2),
            "high": close + np.round(np.abs(rng.normal(0, 0.05, n)), 2),
            "low": close - np.round(np.abs(rng.normal(0, 0.05, n)), 2),
            "close": close,
            "volume": rng.integers(100, 5000, n).astype(float),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    if quotes:
        frame = frame.with_columns(bid=pl.col("close") - 0.01, ask=pl.col("close") + 0.01)
    return frame
