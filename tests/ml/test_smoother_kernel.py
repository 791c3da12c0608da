"""The features' seeded smoothers (Wilder's averages, EMAs) run their recursion in Rust (`_core.seeded_ewm`)
with seeds from Polars' rolling mean on each symbol's first rows: on hypothesis-generated columns with
missing values, NaN and infinities in them, symbols shorter than the seed row and several seed rows, the
result equals the smoother's Polars definition (`Smoother.expr()`, an EWM with adjust=False over the
seeded column) bit for bit, nulls on the same rows. A hand-computed case pins the recursion itself."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hybridtrader._core import seeded_ewm
from hybridtrader.ml.features import GROUP, ROW, Smoother, ema, row_in_symbol, smooth, symbol_runs, wilder
from hypothesis import given, settings
from hypothesis import strategies as st

SPECIAL = [None, float("nan"), float("inf"), -float("inf")]


def frame_of(lengths: list[int], values: list[float | None]) -> pl.DataFrame:
    symbols = np.repeat([f"S{i:02d}" for i in range(len(lengths))], lengths)
    return pl.DataFrame({"symbol": symbols, "x": pl.Series(values, dtype=pl.Float64)}).with_columns(
        row_in_symbol().alias(ROW), symbol_runs().alias(GROUP)
    )


def assert_bit_equal(got: pl.Series, want: pl.Series) -> None:
    """Nulls on the same rows, NaN on the same rows, every other value the same bits (a NaN's sign bit
    is not a value: no later operation reads it)."""
    assert got.is_null().to_list() == want.is_null().to_list()
    g, w = got.to_numpy(), want.to_numpy()
    assert np.array_equal(np.isnan(g), np.isnan(w))
    keep = ~np.isnan(g)
    assert np.array_equal(g[keep].view(np.int64), w[keep].view(np.int64))


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
    special_rate=st.sampled_from([0.0, 0.05, 0.3]),
    n=st.integers(2, 9),
    first=st.integers(0, 4),
)
def test_kernel_equals_the_polars_smoother(
    lengths: list[int], seed: int, special_rate: float, n: int, first: int
) -> None:
    rng = np.random.default_rng(seed)
    total = sum(lengths)
    values: list[float | None] = list(np.round(40 + np.cumsum(rng.normal(0, 0.3, total)), 2))
    for i in np.flatnonzero(rng.random(total) < special_rate):
        values[i] = SPECIAL[rng.integers(len(SPECIAL))]
    frame = frame_of(lengths, values)
    smoothers = {"w": wilder("x", n, first), "e": ema("x", n), "w1": Smoother("x", n, 1.0 / n, 0)}
    got = smooth(frame, smoothers)
    want = frame.select(s.expr().alias(k) for k, s in smoothers.items())
    assert [s.name for s in got] == list(smoothers)
    for series in got:
        assert_bit_equal(series, want[series.name])


def test_float32_sources_take_the_polars_path() -> None:
    frame = frame_of([6, 5], [1.0, 2.0, 4.0, 3.0, 5.0, 8.0, 2.0, 2.0, 1.0, 7.0, 3.0])
    frame = frame.with_columns(pl.col("x").cast(pl.Float32))
    s = ema("x", 3)
    (got,) = smooth(frame, {"e": s})
    assert got.dtype == pl.Float32
    assert_bit_equal(got.cast(pl.Float64), frame.select(s.expr()).to_series().cast(pl.Float64))


def test_hand_computed_recursion() -> None:
    # one run, seed 2 on row 1, alpha 1/2: then 2 + (4 - 2) / 2 = 3; a missing row; then
    # weight (1/2)^2: 3 + (1 - 3) * 0.5 / 0.75
    value = np.array([9.0, 9.0, 4.0, np.nan, 1.0])
    present = np.array([True, True, True, False, True])
    out, ok = seeded_ewm(value, present, np.array([0, 5]), np.array([2.0]), np.array([True]), 1, 0.5)
    assert ok.tolist() == [False, True, True, False, True]
    assert out[[1, 2, 4]].tolist() == [2.0, 3.0, 3.0 - 2.0 * (0.5 / 0.75)]


def test_bad_bounds_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="run bounds"):
        seeded_ewm(np.ones(3), np.ones(3, bool), np.array([0, 2]), np.zeros(1), np.ones(1, bool), 0, 0.5)
