"""FrameFeed's (ts, symbol) order: the integer check that finds a frame in that order already, and the
lexsort otherwise, against Polars' own stable sort by (ts, symbol) on the strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hybridtrader.backtest.feed import _sorted, _strings
from hybridtrader.market.schema import BAR_SCHEMA
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["AAPL", "B", "BB", "MSFT", "Z"]), st.integers(0, 6)), max_size=40
    ),
    presorted=st.booleans(),
)
def test_sorted_is_the_stable_sort_by_ts_then_symbol(rows: list[tuple[str, int]], presorted: bool) -> None:
    bars = pl.DataFrame(
        [
            (s, T0 + timedelta(minutes=m), float(k), 1.0, 1.0, 1.0, 1.0, 1.0, k)
            for k, (s, m) in enumerate(rows)
        ],
        schema=BAR_SCHEMA,
        orient="row",
    )
    if presorted:  # the path that keeps the frame as it is
        bars = bars.sort("ts", "symbol", maintain_order=True)
    assert _strings(_sorted(bars)).equals(bars.sort("ts", "symbol", maintain_order=True))


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["AAPL", "B", "BB", "MSFT", "Z"]), st.integers(0, 6)), max_size=40
    ),
    start=st.integers(0, 40),
    length=st.integers(0, 40),
)
def test_strings_of_a_batch_are_the_enums_cast(rows: list[tuple[str, int]], start: int, length: int) -> None:
    """A batch (a slice of the sorted feed: some of the Enum's names absent) gets the strings a cast gives."""
    bars = pl.DataFrame(
        [
            (s, T0 + timedelta(minutes=m), float(k), 1.0, 1.0, 1.0, 1.0, 1.0, k)
            for k, (s, m) in enumerate(rows)
        ],
        schema=BAR_SCHEMA,
        orient="row",
    )
    batch = _sorted(bars).slice(start, length)
    got = _strings(batch)
    assert got.schema == BAR_SCHEMA
    assert got.equals(batch.with_columns(pl.col("symbol").cast(pl.String)))
