"""`features.feature_inputs`: the bar columns a feature list reads. Features computed on those columns alone
(a `SortedBars` of them, as `strategy.rules.session_features_ahead` builds) equal, bit for bit, the features
computed on the whole bars, for hypothesis-drawn feature lists, with and without quote columns."""

from __future__ import annotations

import polars as pl
from helpers import symbol_bars
from hybridtrader.ml.features import BAR_COLUMNS, SortedBars, compute_features, feature_inputs
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

# Every kind, with short windows (values on short histories).
NAMES = ["zscore_3", "volume_zscore_4", "rsi_3", "atr_3", "natr_5", "adx_3", "ema_slope_3",
         "trend_strength_6", "ret_1", "rv_3", "spread_2"]  # fmt: skip


def test_hand_worked_inputs() -> None:
    assert feature_inputs(("zscore_5",), BAR_COLUMNS) == ("symbol", "ts", "close")
    # the true range reads the high, the low and the previous close
    assert feature_inputs(("atr",), BAR_COLUMNS) == ("symbol", "ts", "high", "low", "close")
    assert feature_inputs(("volume_zscore",), BAR_COLUMNS) == ("symbol", "ts", "volume")
    # the spread from quotes when the bars carry them, else the Corwin-Schultz estimate from high and low
    quoted = (*BAR_COLUMNS, "bid", "ask")
    assert {"bid", "ask"} <= set(feature_inputs(("spread",), quoted))
    assert not {"bid", "ask"} & set(feature_inputs(("spread",), BAR_COLUMNS))
    assert {"high", "low"} <= set(feature_inputs(("spread",), BAR_COLUMNS))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True),
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=4),
    st.integers(0, 2**16),
    st.booleans(),
)
def test_features_on_their_inputs_alone_equal_on_the_whole_bars(
    names: list[str], lengths: list[int], seed: int, quotes: bool
) -> None:
    bars = pl.concat([symbol_bars(f"S{i}", n, seed + i, quotes) for i, n in enumerate(lengths)])
    whole = SortedBars.of(bars)
    inputs = feature_inputs(tuple(names), tuple(bars.columns))
    assert set(inputs) < set(bars.columns)  # something is left out: open is never read
    alone = SortedBars(whole.bars.select(inputs), whole.row, whole.group)
    assert_frame_equal(compute_features(alone, names), compute_features(whole, names), check_exact=True)
