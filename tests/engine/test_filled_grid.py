"""The Trader's per-batch close grid (`_filled_grid`): each bar time's values in their symbols' columns,
forward filled down each column, against a cell-by-cell Python re-statement."""

from __future__ import annotations

import math

import numpy as np
from hybridtrader.engine.trader import _filled_grid
from hybridtrader.market.timeconv import time_runs
from hypothesis import given, settings
from hypothesis import strategies as st


def _reference(times: list[int], codes: list[int], values: list[float], k: int) -> list[list[float]]:
    distinct = sorted(set(times))
    grid = [[math.nan] * k for _ in distinct]
    for t, c, v in zip(times, codes, values, strict=True):
        grid[distinct.index(t)][c] = v
    for r in range(1, len(grid)):
        for c in range(k):
            if math.isnan(grid[r][c]):
                grid[r][c] = grid[r - 1][c]
    return grid


@settings(max_examples=300, deadline=None)
@given(
    k=st.integers(1, 5),
    cells=st.sets(st.tuples(st.integers(0, 6), st.integers(0, 4)), min_size=1, max_size=30),
    data=st.data(),
)
def test_filled_grid_is_the_forward_filled_cells(
    k: int, cells: set[tuple[int, int]], data: st.DataObject
) -> None:
    rows = sorted((t, c) for t, c in cells if c < k)  # (bar time, symbol): sorted, one bar a cell
    if not rows:
        return
    times = [t for t, _ in rows]
    codes = [c for _, c in rows]
    values = data.draw(st.lists(st.floats(-1e6, 1e6), min_size=len(rows), max_size=len(rows)))
    starts, ends = time_runs(np.array(times, dtype=np.int64))
    got = _filled_grid(starts, ends, np.array(codes, dtype=np.intp), np.array(values), k)
    assert np.array_equal(got, np.array(_reference(times, codes, values, k)), equal_nan=True)


def test_a_symbol_before_its_first_bar_is_nan_whatever_the_first_column_holds() -> None:
    # bar time 0: symbol 0 only; bar time 1: both; bar time 2: symbol 1 only
    starts, ends = time_runs(np.array([0, 1, 1, 2], dtype=np.int64))
    got = _filled_grid(starts, ends, np.array([0, 0, 1, 1]), np.array([10.0, 11.0, 20.0, 21.0]), 2)
    assert np.array_equal(got, np.array([[10.0, math.nan], [11.0, 20.0], [11.0, 21.0]]), equal_nan=True)
