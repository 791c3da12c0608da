"""The engine's marked values of a batch's bar times, computed for several bar times in one step (Rust,
`marked_values`), against numpy's sum over each row alone (the bits the equity curve had when each bar time
was its own numpy step)."""

from __future__ import annotations

import numpy as np
import pytest
from hybridtrader._core import marked_values
from hybridtrader.engine.trader import _marked
from hybridtrader.errors import DataError
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=200, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 40), st.integers(1, 70)),
    seed=st.integers(0, 2**32 - 1),
)
def test_marked_values_are_each_rows_own_sums(shape: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    prices = np.where(rng.random(shape) < 0.2, 0.0, rng.random(shape) * 300)
    pos = np.round(rng.standard_normal(shape[1]) * 500) * (rng.random(shape[1]) < 0.6)
    nets, grosses = _marked(pos, prices)
    assert nets == [float((pos * row).sum()) for row in prices]
    assert grosses == [float(np.abs(pos * row).sum()) for row in prices]


@settings(max_examples=200, deadline=None)
@given(
    shape=st.tuples(st.integers(0, 5), st.integers(0, 300)),  # rows past numpy's pairwise block of 128
    seed=st.integers(0, 2**32 - 1),
)
def test_marked_values_have_numpys_bits(shape: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    # magnitudes 1e-8 .. 1e8 and signed zeros: the order of the additions shows in the bits
    prices = rng.random(shape) * 10.0 ** rng.integers(-8, 9, shape)
    pos = np.round(rng.standard_normal(shape[1]) * 500) * (rng.random(shape[1]) < 0.6)
    pos[rng.random(shape[1]) < 0.1] = -0.0
    nets, grosses = marked_values(pos, prices)
    values = prices * pos
    assert _bits(nets) == _bits([row.sum() for row in values])  # each row alone, by numpy
    assert _bits(grosses) == _bits([np.abs(row).sum() for row in values])


def _bits(values: object) -> list[int]:
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()


def test_marked_values_refuse_mismatched_widths() -> None:
    with pytest.raises(DataError, match="3 prices per row for 2 symbols"):
        marked_values(np.zeros(2), np.zeros((1, 3)))
