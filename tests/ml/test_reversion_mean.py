"""`ml.labels.reversion_mean` on rows in (symbol, ts) order: each row's mean is its symbol's last `window`
closes added oldest first, one at a time, times 1/window (the bits a live node adding closes bar by bar
gets), and null until the symbol has `window` closes: never a close of the symbol before it. And
`reverted`, the exit rule on that mean."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from hybridtrader.ml.labels import reversion_mean, reverted
from hypothesis import given, settings
from hypothesis import strategies as st

CENTS = st.integers(1, 100_000).map(lambda c: c / 100)  # cent prices: sums that round in the last bit


def reference(closes: list[float], window: int) -> list[float | None]:
    """The mean of one symbol's closes, row by row, in plain Python."""
    out: list[float | None] = []
    for i in range(len(closes)):
        if i < window - 1:
            out.append(None)
            continue
        total = closes[i - window + 1]
        for c in closes[i - window + 2 : i + 1]:
            total = total + c
        out.append(total * (1.0 / window))
    return out


@settings(max_examples=60, deadline=None)
@given(
    window=st.integers(1, 6),
    symbols=st.lists(st.lists(CENTS, min_size=0, max_size=12), min_size=1, max_size=5),
    code_dtype=st.sampled_from([pl.String, pl.UInt32]),
)
def test_each_symbols_mean_is_its_own_closes_added_in_order(
    window: int, symbols: list[list[float]], code_dtype: pl.DataType
) -> None:
    names = [f"S{k}" if code_dtype == pl.String else k for k in range(len(symbols))]
    frame = pl.DataFrame(
        {
            "symbol": pl.Series(
                [n for n, closes in zip(names, symbols, strict=True) for _ in closes], dtype=code_dtype
            ),
            "close": [c for closes in symbols for c in closes],
        },
        schema={"symbol": code_dtype, "close": pl.Float64},
    )
    got = frame.select(reversion_mean(window).alias("mean"))["mean"].to_list()
    want = [m for closes in symbols for m in reference(closes, window)]
    assert got == want  # floats compared exactly: the same additions in the same order


def test_hand_worked_two_symbols() -> None:
    frame = pl.DataFrame(
        {"symbol": ["A", "A", "A", "B", "B", "B"], "close": [1.0, 2.0, 4.0, 10.0, 20.0, 40.0]}
    )
    got = frame.select(reversion_mean(2).alias("mean"))["mean"].to_list()
    assert got == [None, 1.5, 3.0, None, 15.0, 30.0]  # B's first row does not reach back into A


def test_reverted_on_floats_and_arrays() -> None:
    """Hand-worked: a long reverts at or above its entry mean, a short at or below; NaN never reverts.
    Floats give bools (what the strategy asks per open trade), arrays the same elementwise."""
    cases = [(1.0, 10.0, 10.0, True), (1.0, 10.0, 9.99, False), (1.0, 10.0, 10.01, True),
             (-1.0, 10.0, 9.99, True), (-1.0, 10.0, 10.01, False), (1.0, 10.0, math.nan, False)]  # fmt: skip
    for side, mean, close, want in cases:
        assert reverted(side, mean, close) is want
    side, mean, close, want = (np.array(c) for c in zip(*cases, strict=True))
    assert reverted(side, mean, close).tolist() == want.tolist()
