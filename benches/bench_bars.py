"""Bars benchmarks: ours beside a peer in the same group.

- ``bars_batch_1m`` (100 symbols) and ``bars_batch_1m_one_symbol``: 1-minute bars from N trades (full:
  10M over 5 sessions; quick: 1M over 1 session, so that trades per minute stay of the same order), our
  batch `aggregate_trades` vs Polars `group_by_dynamic` computing the same columns (open, high, low, close,
  volume, vwap, trade count), both on the same frame sorted by (symbol, ts), as a parquet store holds it.
  After each pair the README's row is printed from the two minimum times of this run.
- ``bars_push_many``: streaming `BarAggregator.push_many` in chunks of 1,000 ticks in time order (ids
  interned once, the frames of completed bars built as they come); extra_info ticks_per_s.
- ``bars_push``: one `BarAggregator.push` per tick from Python vs a minimal pure-Python dict-based
  aggregator doing the same work; extra_info ns_per_tick.

The two streaming groups are single-threaded (ours and the peer alike) and timed in process CPU time, so
that other load on a shared machine does not inflate them; the batch group, where Polars uses every core,
is timed in wall-clock time. Quick by default; ``HYBRIDTRADER_BENCH=full`` for the full sizes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest
from hybridtrader import BarAggregator
from hybridtrader.market import aggregate_trades
from polars.testing import assert_frame_equal

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
N_TRADES = 10_000_000 if FULL else 1_000_000
N_PUSH = 1_000_000 if FULL else 200_000
N_SYMBOLS = 100
MINUTE = 60 * 10**9
SESSION_OPEN = 1_704_205_800 * 10**9  # 2024-01-02 14:30 UTC
SESSION_NS = 390 * MINUTE
N_SESSIONS = 5 if FULL else 1


def _trades(n: int, seed: int = 0) -> pl.DataFrame:
    """Random trades over regular sessions, in time order with symbols interleaved."""
    rng = np.random.default_rng(seed)
    day = rng.integers(0, N_SESSIONS, n) * 86_400 * 10**9
    ts = np.sort(SESSION_OPEN + day + rng.integers(0, SESSION_NS, n))
    names = np.array([f"S{i:03d}" for i in range(N_SYMBOLS)])
    return pl.DataFrame(
        {
            "symbol": names[rng.integers(0, N_SYMBOLS, n)],
            "ts": pl.Series(ts).cast(pl.Datetime("ns", "UTC")),
            "price": np.round(rng.uniform(10, 500, n), 2),
            "size": rng.integers(1, 1000, n).astype(np.float64),
        }
    )


@pytest.fixture(scope="module")
def trades() -> pl.DataFrame:
    return _trades(N_TRADES)


@pytest.fixture(scope="module")
def trades_by_symbol(trades: pl.DataFrame) -> pl.DataFrame:
    return trades.sort("symbol", "ts")


@pytest.fixture(scope="module")
def trades_one_symbol(trades: pl.DataFrame) -> pl.DataFrame:
    # A materialised column, as read from a store (a broadcast literal would be rebuilt on each access).
    return trades.with_columns(symbol=pl.repeat("S000", trades.height, eager=True))


# Minimum seconds of each batch benchmark in this run, by (case, "ours" / "polars").
BATCH_MIN: dict[tuple[str, str], float] = {}


def polars_1m(trades: pl.DataFrame) -> pl.DataFrame:
    return trades.group_by_dynamic("ts", every="1m", group_by="symbol", closed="left", label="left").agg(
        open=pl.col("price").first(),
        high=pl.col("price").max(),
        low=pl.col("price").min(),
        close=pl.col("price").last(),
        volume=pl.col("size").sum(),
        vwap=(pl.col("price") * pl.col("size")).sum() / pl.col("size").sum(),
        trades=pl.len(),
    )


def _batch(benchmark, case: str, who: str, frame: pl.DataFrame, capsys: pytest.CaptureFixture) -> None:
    """Times one side of a batch pair; after the second side, prints the README row of the pair."""
    run = (lambda: aggregate_trades(frame, every="1m")) if who == "ours" else (lambda: polars_1m(frame))
    bars = benchmark(run)
    BATCH_MIN[case, who] = benchmark.stats.stats.min
    benchmark.extra_info["ticks_per_s"] = N_TRADES / benchmark.stats.stats.min
    expected = aggregate_trades(frame, every="1m")
    assert_frame_equal(bars.sort("symbol", "ts").cast(dict(expected.schema)), expected)
    if (case, "ours") in BATCH_MIN and (case, "polars") in BATCH_MIN:
        ours, polars = BATCH_MIN[case, "ours"], BATCH_MIN[case, "polars"]
        with capsys.disabled():
            print(
                f"\n| 1-minute bars from {N_TRADES // 10**6}M trades, {case} (batch) | {ours * 1e3:.0f} ms "
                f"({N_TRADES / ours / 1e6:.0f}M trades/s) | Polars `group_by_dynamic`, same columns: "
                f"{polars * 1e3:.0f} ms | >= 5x: {polars / ours:.1f}x |"
            )


@pytest.mark.benchmark(group="bars_batch_1m")
def test_batch_1m_ours(benchmark, trades_by_symbol: pl.DataFrame, capsys) -> None:
    _batch(benchmark, f"{N_SYMBOLS} symbols", "ours", trades_by_symbol, capsys)


@pytest.mark.benchmark(group="bars_batch_1m")
def test_batch_1m_polars_group_by_dynamic(benchmark, trades_by_symbol: pl.DataFrame, capsys) -> None:
    _batch(benchmark, f"{N_SYMBOLS} symbols", "polars", trades_by_symbol, capsys)


@pytest.mark.benchmark(group="bars_batch_1m_one_symbol")
def test_batch_1m_one_symbol_ours(benchmark, trades_one_symbol: pl.DataFrame, capsys) -> None:
    _batch(benchmark, "one symbol", "ours", trades_one_symbol, capsys)


@pytest.mark.benchmark(group="bars_batch_1m_one_symbol")
def test_batch_1m_one_symbol_polars_group_by_dynamic(
    benchmark, trades_one_symbol: pl.DataFrame, capsys
) -> None:
    _batch(benchmark, "one symbol", "polars", trades_one_symbol, capsys)


@pytest.mark.benchmark(group="bars_push_many", timer=time.process_time)
def test_push_many_chunks_of_1000(benchmark, trades: pl.DataFrame) -> None:
    names = [f"S{i:03d}" for i in range(N_SYMBOLS)]
    codes = trades["symbol"].cast(pl.Enum(names)).to_physical().to_numpy()
    ts = trades["ts"].dt.epoch("ns").to_numpy()
    price, size = trades["price"].to_numpy(), trades["size"].to_numpy()

    def run() -> int:
        agg = BarAggregator(every="1m")
        ids = agg.intern(names)[codes]
        n_bars = 0
        for i in range(0, len(ids), 1000):
            n_bars += len(agg.push_many(ids[i : i + 1000], ts[i : i + 1000], price[i : i + 1000],
                                        size[i : i + 1000]))
        return n_bars + len(agg.close())

    n_bars = benchmark(run)
    benchmark.extra_info["ticks_per_s"] = N_TRADES / benchmark.stats.stats.min
    assert n_bars == len(aggregate_trades(trades, every="1m"))


def _push_inputs(trades: pl.DataFrame) -> list[tuple[str, int, float, float]]:
    head = trades.head(N_PUSH)
    return list(zip(head["symbol"].to_list(), head["ts"].dt.epoch("ns").to_list(), head["price"].to_list(),
                    head["size"].to_list(), strict=True))


class DictAggregator:
    """The peer: 1-minute trade bars per symbol in a dict, emitting a tuple when a bar completes."""

    def __init__(self, every_ns: int) -> None:
        self.every = every_ns
        self.state: dict[str, list] = {}

    def push(self, symbol: str, ts: int, price: float, size: float) -> tuple:
        if not (price > 0 and price != float("inf") and size >= 0 and size != float("inf")):
            return ()
        s = self.state.get(symbol)
        if s is not None and s[0] <= ts < s[0] + self.every:
            s[2] = max(s[2], price)
            s[3] = min(s[3], price)
            s[4] = price
            s[5] += size
            s[6] += price * size
            s[7] += 1
            return ()
        start = ts - ts % self.every
        self.state[symbol] = [start, price, price, price, price, size, price * size, 1]
        if s is None:
            return ()
        return ((symbol, s[0], s[1], s[2], s[3], s[4], s[5], s[6] / s[5] if s[5] else float("nan"), s[7]),)


def _run_pushes(push: Callable[[str, int, float, float], tuple], ticks: list) -> int:
    emitted = 0
    for symbol, ts, price, size in ticks:
        if push(symbol, ts, price, size):
            emitted += 1
    return emitted


@pytest.mark.benchmark(group="bars_push", timer=time.process_time)
def test_push_ours(benchmark, trades: pl.DataFrame) -> None:
    ticks = _push_inputs(trades)
    emitted = benchmark(lambda: _run_pushes(BarAggregator(every="1m").push, ticks))
    benchmark.extra_info["ns_per_tick"] = benchmark.stats.stats.min / len(ticks) * 1e9
    assert emitted == _run_pushes(DictAggregator(MINUTE).push, ticks)


@pytest.mark.benchmark(group="bars_push", timer=time.process_time)
def test_push_python_dict_peer(benchmark, trades: pl.DataFrame) -> None:
    ticks = _push_inputs(trades)
    emitted = benchmark(lambda: _run_pushes(DictAggregator(MINUTE).push, ticks))
    benchmark.extra_info["ns_per_tick"] = benchmark.stats.stats.min / len(ticks) * 1e9
    assert emitted > 0
