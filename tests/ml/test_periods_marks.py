"""Periods.from_bars marks: each symbol's price on its last bar of each period, carried over periods in which
it has no bar or its last bar has no price (NaN before its first), checked against a plain-Python walk over
the bars."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from hybridtrader.ml.evaluation import Periods
from hypothesis import given, settings
from hypothesis import strategies as st

START_NS = 1_704_205_800 * 10**9  # 2024-01-02 14:30 UTC, a session open
MINUTE_NS = 60 * 10**9


def reference_marks(rows: list[tuple[str, int, float | None]], minutes: int) -> dict[str, list[float]]:
    """symbol -> mark per period key (sorted distinct `minutes`-buckets of every bar's time)."""
    width = minutes * MINUTE_NS
    keys = sorted({ts - ts % width for _, ts, _ in rows})
    out: dict[str, list[float]] = {}
    for symbol in sorted({s for s, _, _ in rows}):
        mine = sorted((ts, price) for s, ts, price in rows if s == symbol)
        marks, price, i = [], math.nan, 0
        for key in keys:
            last: float | None = None
            while i < len(mine) and mine[i][0] < key + width:
                last = mine[i][1]
                i += 1
            price = price if last is None else last
            marks.append(price)
        out[symbol] = marks
    return out


bar = st.tuples(
    st.sampled_from(["AA", "B", "CC", "D"]),
    st.integers(0, 200),  # minute after the open
    st.one_of(st.none(), st.floats(1.0, 500.0, allow_nan=False)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(bar, min_size=1, max_size=60, unique_by=lambda b: (b[0], b[1])), st.sampled_from([1, 5, 30]))
def test_marks_are_the_last_price_carried_forward(bars: list, minutes: int) -> None:
    rows = [(s, START_NS + m * MINUTE_NS, p) for s, m, p in bars]
    frame = pl.DataFrame(
        {"symbol": [r[0] for r in rows], "ts": [r[1] for r in rows], "close": [r[2] for r in rows]},
        schema={"symbol": pl.String, "ts": pl.Int64, "close": pl.Float64},
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    periods = Periods.from_bars(frame, minutes, 252)
    want = reference_marks(rows, minutes)
    assert periods.symbols == sorted(want)
    np.testing.assert_array_equal(periods.marks, np.array([want[s] for s in periods.symbols]))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(bar, min_size=1, max_size=60, unique_by=lambda b: (b[0], b[1])),
    st.sampled_from([1, 5, 30]),
    st.data(),
)
def test_marked_by_another_price_is_from_bars_on_it(bars: list, minutes: int, data: st.DataObject) -> None:
    """The next strategy's periods (`marked_by` its own price column of the same bars) are exactly what
    `from_bars` makes from that column."""
    other = data.draw(
        st.lists(st.one_of(st.none(), st.floats(1.0, 500.0)), min_size=len(bars), max_size=len(bars))
    )
    frame = pl.DataFrame(
        {
            "symbol": [b[0] for b in bars],
            "ts": [START_NS + b[1] * MINUTE_NS for b in bars],
            "close": [b[2] for b in bars],
            "pnl_close": other,
        },
        schema={"symbol": pl.String, "ts": pl.Int64, "close": pl.Float64, "pnl_close": pl.Float64},
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    remarked = Periods.from_bars(frame, minutes, 252).marked_by(frame["pnl_close"])
    direct = Periods.from_bars(frame, minutes, 252, "pnl_close")
    assert remarked.symbols == direct.symbols and remarked.keys.equals(direct.keys)
    np.testing.assert_array_equal(remarked.marks, direct.marks)
    np.testing.assert_array_equal(
        remarked.marks,
        np.array(
            [
                list(v)
                for v in reference_marks(
                    [(b[0], START_NS + b[1] * MINUTE_NS, p) for b, p in zip(bars, other, strict=True)],
                    minutes,
                ).values()
            ]
        ),
    )
