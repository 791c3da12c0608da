"""Unit and property tests of the stream's parts: the bar sequencer (gaps, backfill, dedupe), reconnect
backoff, the slow-consumer queues, handler dispatch, and the `hybridtrader stream` command."""

from __future__ import annotations

import asyncio
import random

import polars as pl
import pytest
from helpers import MIN
from hybridtrader.cli import main
from hybridtrader.config import StreamBackoffConfig
from hybridtrader.stream import parse_every
from hybridtrader.stream.connection import backoff_delay
from hybridtrader.stream.dispatch import STOP, BlockingQueue, DropOldestQueue, Handlers, LatencyRecord, pump
from hybridtrader.stream.messages import BAR_SCHEMA, Columns
from hybridtrader.stream.sequencer import BarSequencer, bar_columns
from hypothesis import given, settings
from hypothesis import strategies as st


def bars(rows: list[tuple[str, int]], price: float = 10.0) -> pl.DataFrame:
    """Bars (symbol, minute index) with a price marking where they came from."""
    return pl.DataFrame(
        {
            "symbol": [s for s, _ in rows],
            "ts": [m * MIN for _, m in rows],
            "open": price,
            "high": price,
            "low": price,
            "close": price,
            "volume": 100.0,
            "vwap": price,
            "trades": 1,
        },
        schema={**BAR_SCHEMA, "ts": pl.Int64},
    ).with_columns(pl.col("ts").cast(BAR_SCHEMA["ts"]))


def keys(cols: Columns) -> list[tuple[str, int, bool]]:
    frame = cols.frame()
    return [
        (s, t // MIN, b)
        for s, t, b in frame.select("symbol", pl.col("ts").dt.epoch("ns"), "backfilled").rows()
    ]


def test_sequencer_replaces_the_bars_of_a_gap_and_holds_later_bars() -> None:
    seq = BarSequencer(MIN)
    first = seq.stream_bars([bar_columns(bars([("A", 0), ("B", 0)]))])
    assert keys(first) == [("A", 0, False), ("B", 0, False)]
    seq.open_gap(1 * MIN + 5)  # last tick seen at minute 1 (+5 ns): minute 1 onwards is suspect
    assert seq.open
    assert len(seq.stream_bars([bar_columns(bars([("A", 1)]))])) == 0  # tainted: dropped
    seq.close_gap(3 * MIN + 7)  # ticks again from minute 3
    assert seq.due(4 * MIN - 1, 0) is None  # minute 3 is still running
    assert seq.due(4 * MIN + 10, 20) is None  # ended, but within the watermark
    gap = seq.due(4 * MIN, 0)
    assert gap is not None and (gap.first, gap.last) == (1 * MIN, 3 * MIN)
    # Minute 3 from the stream is tainted; minute 4 is fine but must wait behind the backfill.
    assert len(seq.stream_bars([bar_columns(bars([("A", 3), ("A", 4), ("B", 4)]))])) == 0
    rest = bars([("A", 0), ("A", 1), ("A", 2), ("B", 2), ("A", 3), ("A", 5)], price=11.0)
    out = seq.backfilled(gap, rest)
    # REST's minute 0 was delivered already, minute 5 is outside the gap: neither is emitted.
    assert keys(out) == [
        ("A", 1, True),
        ("A", 2, True),
        ("B", 2, True),
        ("A", 3, True),
        ("A", 4, False),
        ("B", 4, False),
    ]
    assert not seq.gaps and seq.tainted == 2 and seq.duplicates == 0


def test_sequencer_drops_duplicates_and_merges_touching_gaps() -> None:
    seq = BarSequencer(MIN)
    seq.stream_bars([bar_columns(bars([("A", 0)]))])
    assert len(seq.stream_bars([bar_columns(bars([("A", 0)]))])) == 0 and seq.duplicates == 1
    seq.open_gap(2 * MIN)
    seq.close_gap(3 * MIN)
    seq.open_gap(4 * MIN)  # touches the previous gap (minute 3 is its last): one gap from 2 on
    assert len(seq.gaps) == 1 and seq.gaps[0].first == 2 * MIN and seq.gaps[0].last is None
    seq.close_gap(5 * MIN)
    assert (seq.gaps[0].first, seq.gaps[0].last) == (2 * MIN, 5 * MIN)
    seq.gaps[0].fetching = True
    seq.open_gap(5 * MIN)  # its REST request is in flight: a new gap, overlap settled by the dedupe
    assert len(seq.gaps) == 2


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["gap", "bars", "backfill"]), st.integers(0, 30)), max_size=40),
    st.randoms(use_true_random=False),
)
def test_sequencer_never_emits_a_bar_twice_or_out_of_order(
    ops: list[tuple[str, int]], rng: random.Random
) -> None:
    """Whatever the order of breaks, stream bars and backfills, each (symbol, ts) is emitted at most once
    and each symbol's bars come out in increasing time."""
    seq = BarSequencer(MIN)
    emitted: list[Columns] = []
    minute = 0
    for op, k in ops:
        if op == "gap":
            if seq.open:
                seq.close_gap((minute + k % 3) * MIN)
            else:
                seq.open_gap(minute * MIN)
        elif op == "bars":
            rows = [(s, minute) for s in ("A", "B") if rng.random() < 0.8]
            emitted.append(seq.stream_bars([bar_columns(bars(rows))]))
            minute += 1 + k % 2
        elif (gap := seq.due(minute * MIN, 0)) is not None:
            emitted.append(
                seq.backfilled(gap, bars([(s, m) for s in ("A", "B") for m in range(0, minute + 2)]))
            )
    emitted.append(seq.drain())
    out = Columns.concat(emitted).frame()
    assert out.select("symbol", "ts").is_duplicated().sum() == 0
    for _, g in out.group_by("symbol"):
        ts = g["ts"].to_list()
        assert ts == sorted(ts)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 80), st.floats(0.01, 5.0), st.floats(0.01, 120.0), st.integers(0, 2**32))
def test_backoff_is_full_jitter_under_an_exponential_cap(
    attempt: int, initial: float, cap: float, seed: int
) -> None:
    cfg = StreamBackoffConfig(initial_s=initial, max_s=cap)
    d = backoff_delay(attempt, cfg, random.Random(seed))
    assert 0.0 <= d <= min(cap, initial * 2 ** (attempt - 1))


def test_backoff_spreads_over_the_whole_window() -> None:
    cfg = StreamBackoffConfig(initial_s=1.0, max_s=8.0)
    rng = random.Random(1)
    draws = [backoff_delay(10, cfg, rng) for _ in range(4000)]
    # Full jitter is uniform on [0, 8]: mean 4, a quarter of the draws below 2.
    assert abs(sum(draws) / len(draws) - 4.0) < 0.2
    assert abs(sum(d < 2.0 for d in draws) / len(draws) - 0.25) < 0.03
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(0, cfg, rng)


def test_quote_queue_drops_oldest_and_trade_queue_pushes_back() -> None:
    async def main() -> None:
        q: DropOldestQueue[int] = DropOldestQueue(3)
        for i in range(5):
            q.put_nowait(i)
        assert q.dropped == 2 and [await q.get() for _ in range(3)] == [2, 3, 4]
        b: BlockingQueue[int] = BlockingQueue(2)
        await b.put(1)
        await b.put(2)
        blocked = asyncio.ensure_future(b.put(3))
        await asyncio.sleep(0.01)
        assert not blocked.done() and b.waits == 1  # the producer waits: nothing is dropped
        assert await b.get() == 1
        await asyncio.wait_for(blocked, 1)
        assert [await b.get(), await b.get()] == [2, 3]

    asyncio.run(main())


def test_handlers_sync_async_several_and_a_raising_one() -> None:
    calls: list[str] = []

    async def main() -> tuple[Handlers, LatencyRecord]:
        h = Handlers("trade")
        h.add(lambda x: calls.append(f"sync {x}"))

        async def coro(x: list[int]) -> None:
            await asyncio.sleep(0)
            calls.append(f"async {x}")

        h.add(coro)
        h.add(lambda x: 1 / 0)
        q: BlockingQueue[tuple[int | None, int]] = BlockingQueue(8)
        lat = LatencyRecord(16)
        task = asyncio.ensure_future(pump(q, h, lat, list))
        await q.put((0, 1))
        await asyncio.sleep(0.01)  # handled alone
        for i in (1, 2):  # queued up while the pump is not looking: merged into one call
            q.put_nowait((i, 1))
        q.put_nowait(STOP)
        await task
        return h, lat

    h, lat = asyncio.run(main())
    assert calls == ["sync [0]", "async [0]", "sync [1, 2]", "async [1, 2]"]
    assert h.errors == 2 and h.calls == 6
    assert lat.percentiles_us()[0] is not None


def test_latency_percentiles() -> None:
    lat = LatencyRecord(1000)
    assert lat.percentiles_us() == [None, None]
    for v in range(1, 101):
        lat.add(v * 1000)
    p50, p99 = lat.percentiles_us()
    assert p50 == pytest.approx(50.5) and p99 == pytest.approx(99.01)


def test_parse_every() -> None:
    assert parse_every("1m") == (MIN, "1Min")
    assert parse_every("15m") == (15 * MIN, "15Min")
    assert parse_every("2h") == (120 * MIN, "2Hour")
    for bad in ("0m", "60m", "1d", "1s", "m", "", "1.5m"):
        with pytest.raises(ValueError, match="every"):
            parse_every(bad)


def test_stream_command_against_the_local_venue(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["stream", "--symbols", "AAPL,MSFT", "--speed", "120", "--duration", "2.5", "--every", "1m"])
    out = capsys.readouterr().out
    assert rc == 0
    bar_lines = [line for line in out.splitlines() if line.startswith("2024-01-02 09:3")]  # New York time
    assert bar_lines and all(line[17:20] == "EST" for line in bar_lines)
    assert any(" AAPL " in line for line in bar_lines) and any(" MSFT " in line for line in bar_lines)
    assert "stream summary" in out and "socket-to-handler p99" in out


def test_stream_command_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", "--symbols", " , ", "--duration", "1"]) == 2
    assert "--symbols" in capsys.readouterr().err
    assert main(["stream", "--symbols", "AAPL", "--every", "7x"]) == 2
    assert "every" in capsys.readouterr().err
