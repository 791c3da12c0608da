"""The backtest's per-bar-time path into the fill simulator: a batch loaded once (`load_bar_arrays`) and fed
by rows (`on_loaded_bars`) or by time (`catch_up`), its events made in one call (`drain_updates`), against
the frame path (`on_bars`/`drain`) on the hand-worked bar case, and against the rows closed by each time."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from helpers import MIN
from hybridtrader.errors import DataError
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market.schema import BAR_SCHEMA
from hypothesis import given, settings
from hypothesis import strategies as st

OPEN = 1_704_205_800_000_000_000  # 2024-01-02 14:30 UTC, 09:30 New York
FREE = FillSettings(sec_fee_rate=0.0, taf_per_share=0.0, entry_latency_ms=0.0, ack_latency_ms=0.0)
ROWS = [(OPEN + MIN, 10.5, 10.7, 10.4, 10.6, 109.0), (OPEN + 2 * MIN, 10.6, 10.6, 10.5, 10.5, 160.0)]
COLUMNS = ("client_order_id", "symbol", "side", "event", "qty", "price", "fee", "filled_qty", "leaves_qty")
ENDS = ("fill", "canceled", "expired", "rejected", "replaced")


def _sim() -> FillSimulator:
    s = FillSimulator(FillSettings(**{**FREE.__dict__, "bar_participation": 0.1, "sec_fee_rate": 27.8e-6}))
    s.submit("mkt", "AAA", "buy", 25, OPEN)
    s.submit("lim", "AAA", "sell", 5, OPEN, type="limit", limit_price=10.65)
    s.submit("gone", "AAA", "buy", 5, OPEN, type="limit", limit_price=9.0)
    s.cancel("gone", OPEN + MIN // 2)
    return s


def test_loaded_rows_fill_as_the_frame_path_and_drain_updates_as_drain() -> None:
    framed = _sim()
    framed.on_bars(pl.DataFrame([("AAA", *r, r[1], 1) for r in ROWS], schema=BAR_SCHEMA, orient="row"), MIN)
    want = list(framed.drain().select(pl.col("ts").cast(pl.Int64), *COLUMNS, "reason").iter_rows())

    loaded = _sim()
    cols = [np.array(c) for c in zip(*ROWS, strict=True)]
    codes = loaded.symbol_codes(pl.Series(["AAA", "AAA"]))
    loaded.load_bar_arrays(codes, cols[0].astype(np.int64), *cols[1:], every_ns=MIN)
    loaded.on_loaded_bars(0, 1)
    loaded.on_loaded_bars(1, 2)
    loaded.on_loaded_bars(2, 2)  # nothing
    got, ended = loaded.drain_updates(["AAA"], tuple)
    assert got == want  # same events, same (time) order, same values
    assert ended == sum(w[4] in ENDS for w in want) == 3  # mkt filled, lim filled, gone canceled
    # hand-worked: floor(0.1 x 109) = 10 at the first open, the other 15 at the next; the sell limit at
    # 10.65 trades when the first bar's high (10.7) reaches it
    fills = [(g[1], g[0], g[5], g[6]) for g in got if g[4] in ("fill", "partial_fill")]
    assert sorted(fills) == [
        ("lim", OPEN + MIN, 5.0, 10.65),
        ("mkt", OPEN + MIN, 10.0, 10.5),
        ("mkt", OPEN + 2 * MIN, 15.0, 10.6),
    ]
    assert loaded.drain_updates(["AAA"], tuple) == ([], 0)  # drained


def test_drain_updates_names_a_code_past_the_list_blank_and_rows_out_of_range_are_a_data_error() -> None:
    sim = _sim()
    updates, ended = sim.drain_updates([], tuple)  # acks and the cancel, no name known for AAA yet
    assert {u[2] for u in updates} == {""} and ended == 1
    assert [u[4] for u in updates] == ["accepted", "accepted", "accepted", "canceled"]
    sim.load_bar_arrays(
        np.zeros(1, np.uint32), np.array([OPEN + MIN]), *(np.ones(1) for _ in range(5)), every_ns=MIN
    )
    with pytest.raises(DataError, match=r"rows 0\.\.2 of a loaded batch of 1"):
        sim.on_loaded_bars(0, 2)


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 2), min_size=1, max_size=8),  # minutes between bar times
    widths=st.lists(st.integers(1, 3), min_size=8, max_size=8),  # rows per bar time
    nows=st.lists(st.integers(0, 20), min_size=1, max_size=6),  # minutes after OPEN, sorted below
    feeds=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_catch_up_feeds_the_bar_times_closed_by_now_once_as_on_loaded_bars(
    gaps: list[int], widths: list[int], nows: list[int], feeds: list[bool]
) -> None:
    """Reference: a bar time starting at t has closed at now when t + every <= now; `catch_up` feeds the
    rows of those not fed or passed over before (or passes over them without `feed`), as `on_loaded_bars`
    of those rows does."""
    starts = OPEN + MIN * np.cumsum(gaps)
    ts = np.repeat(starts, widths[: len(gaps)]).astype(np.int64)
    n = len(ts)
    cols = [10.0 + np.arange(n) % 3, np.full(n, 11.0), np.full(n, 9.5), np.full(n, 10.2), np.full(n, 500.0)]
    names = [f"S{k}" for k in range(3)]
    caught, rows = FillSimulator(FREE), FillSimulator(FREE)
    for sim in (caught, rows):
        for k, name in enumerate(names):  # 0.1 x 500 = 50 shares a bar: each fills over several bar times
            sim.submit(f"o{k}", name, "buy" if k % 2 else "sell", 120, OPEN)
        codes = sim.symbol_codes(pl.Series([names[k % 3] for k in range(n)]))
        sim.load_bar_arrays(codes, ts, *cols, every_ns=MIN)
    taken = 0
    for now_min, feed in zip(sorted(nows), feeds, strict=False):
        now = OPEN + now_min * MIN
        caught.catch_up(now, feed)
        closed = int(np.sum(ts + MIN <= now))  # rows of the bar times closed by now (ts sorted)
        if feed and closed > taken:
            rows.on_loaded_bars(taken, closed)
        taken = max(taken, closed)
        caught.advance(now)
        rows.advance(now)
    want = rows.drain_updates(names, tuple)
    assert caught.drain_updates(names, tuple) == want
