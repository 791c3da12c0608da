"""`ema_columns` (the Rust core's EMA down columns, what `EmaCross` computes its EMAs with) against the
recursion restated in Python and against scipy's `lfilter` of it, which it replaced: equal bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hybridtrader._core import ema_columns
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter


@settings(max_examples=100, deadline=None)
@given(
    rows=st.integers(0, 12),
    cols=st.integers(1, 4),
    n=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_ema_columns_is_the_recursion_and_lfilter_bit_for_bit(
    rows: int, cols: int, n: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(1.0, 500.0, (rows, cols))
    x[rng.random((rows, cols)) < 0.2] = 0.0  # padding below a column's last close
    last = rng.uniform(1.0, 500.0, cols)
    alpha = 2.0 / (n + 1)
    got = ema_columns(x, alpha, last)
    want = np.empty_like(x)
    y = last.tolist()
    for t in range(rows):  # y_t = alpha x_t + (1 - alpha) y_{t-1}, column by column
        for c in range(cols):
            y[c] = alpha * x[t, c] + (1.0 - alpha) * y[c]
            want[t, c] = y[c]
    assert got.shape == x.shape and got.tobytes() == want.tobytes()
    if rows:
        scipy, _ = lfilter([alpha], [1.0, alpha - 1.0], x, axis=0, zi=((1.0 - alpha) * last)[None, :])
        assert got.tobytes() == scipy.tobytes()
    assert ema_columns(np.asfortranarray(x), alpha, last).tobytes() == got.tobytes()  # any layout


def test_ema_columns_refuses_a_last_row_of_another_width() -> None:
    with pytest.raises(ValueError, match="last has 2 values, want 3"):
        ema_columns(np.ones((2, 3)), 0.5, np.ones(2))
