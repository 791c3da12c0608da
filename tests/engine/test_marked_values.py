"""The engine's marked values of a batch's bar times, computed for several bar times in one numpy step,
against the sum over each row alone (the bits the equity curve had when each bar time was its own step)."""

from __future__ import annotations

import numpy as np
from hybridtrader.engine.trader import _marked
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
