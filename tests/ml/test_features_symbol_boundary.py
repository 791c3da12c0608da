"""compute_features on many symbols: every symbol's features are exactly those of the symbol alone, the later
symbols' included (a look-back is a whole-frame shift masked at each symbol's start, so a mask that is off
by a row would leak the previous symbol's last bars into the next one's first features)."""

from __future__ import annotations

import numpy as np
import polars as pl
from hybridtrader.ml.features import compute_features
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

# Every kind that looks back (true range, +/-DM, close changes, Corwin-Schultz, EMA slope, returns), short
# windows so that short histories have values.
NAMES = ["atr_3", "natr_3", "adx_3", "rsi_3", "spread_2", "ema_slope_3", "ret_1", "ret_2",
         "trend_strength_6", "zscore_3", "volume_zscore_3", "rv_3"]  # fmt: skip


def bars(symbol: str, n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    wiggle = np.abs(rng.normal(0, 0.004, (2, n)))
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": pl.datetime_range(
                pl.datetime(2024, 1, 2, 14, 30, time_zone="UTC"),
                pl.datetime(2024, 1, 2, 14, 30, time_zone="UTC") + pl.duration(minutes=n - 1),
                "1m",
                eager=True,
            ).dt.cast_time_unit("ns"),
            "open": close,
            "high": close * (1 + wiggle[0]),
            "low": close * (1 - wiggle[1]),
            "close": close,
            "volume": rng.lognormal(6, 0.5, n).round(),
        }
    )


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=2, max_size=5), st.integers(0, 2**16))
def test_every_symbol_equals_itself_alone(lengths: list[int], seed: int) -> None:
    parts = [bars(f"S{i}", n, seed + i) for i, n in enumerate(lengths)]
    together = compute_features(pl.concat(parts[::-1]), NAMES)  # given out of order: sorted inside
    for i, part in enumerate(parts):
        got = together.filter(pl.col("symbol") == f"S{i}")
        assert_frame_equal(got, compute_features(part, NAMES), check_exact=True)
