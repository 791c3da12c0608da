"""SortedBars: bars normalised once with their symbols' row and run numbers give every feature and label
pass exactly what that pass derives itself from the raw frame."""

from __future__ import annotations

import polars as pl
import pytest
from hybridtrader.config import MeanReversionLabelConfig, TripleBarrierLabelConfig
from hybridtrader.errors import DataError
from hybridtrader.market.synth import generate_market
from hybridtrader.ml.costs import FixedCost
from hybridtrader.ml.features import SortedBars, compute_features, row_in_symbol, symbol_runs
from hybridtrader.ml.labels import mean_reversion_labels, session_of, triple_barrier_labels
from polars.testing import assert_frame_equal, assert_series_equal

NAMES = ["rsi", "atr", "adx", "zscore_5", "ema_slope", "trend_strength_12", "ret_5"]


@pytest.fixture(scope="module")
def shuffled() -> pl.DataFrame:
    bars = generate_market(symbols=3, sessions=2, seed=5, ticks=False, mean_reversion=0.5).bars_1m
    return bars.sample(fraction=1.0, shuffle=True, seed=2)  # normalising must sort them


def test_sorted_bars_hold_the_sorted_frame_and_its_numbers(shuffled: pl.DataFrame) -> None:
    ready = SortedBars.of(shuffled)
    want = shuffled.sort("symbol", "ts")
    assert_frame_equal(ready.bars, want, check_exact=True)
    # row numbers count from 0 within each symbol, runs number the symbols in sorted order
    ref = want.select(
        pl.int_range(pl.len()).over("symbol").cast(pl.Int64).alias("_i"),
        (pl.col("symbol").rank("dense") - 1).cast(pl.UInt32).alias("_g"),
    )
    assert_series_equal(ready.row, ref["_i"], check_exact=True)
    assert_series_equal(ready.group, ref["_g"], check_exact=True)
    assert ready.group.flags["SORTED_ASC"]
    assert_series_equal(ready.row, want.select(row_in_symbol().alias("_i")).to_series())
    assert_series_equal(ready.group, want.select(symbol_runs().alias("_g")).to_series())


def test_features_and_labels_of_sorted_bars_are_those_of_the_raw_frame(shuffled: pl.DataFrame) -> None:
    ready = SortedBars.of(shuffled)
    assert_frame_equal(compute_features(ready, NAMES), compute_features(shuffled, NAMES), check_exact=True)
    mr = MeanReversionLabelConfig(window=5, entry_z=1.0, horizon_bars=30)
    plain = mean_reversion_labels(shuffled, mr, FixedCost(1.0))
    assert plain.height > 0
    assert mean_reversion_labels(ready, mr, FixedCost(1.0)).equals(plain)
    sessions = session_of(ready.bars["ts"])  # row for row of the sorted bars: used
    assert mean_reversion_labels(ready, mr, FixedCost(1.0), intraday=True, sessions=sessions).equals(plain)
    tb = TripleBarrierLabelConfig(vol_span=20, horizon_bars=60, trend_window=30, event_spacing_bars=5)
    plain = triple_barrier_labels(shuffled, tb, FixedCost(1.0))
    assert plain.height > 0
    # a column added to the same rows (a P&L price) keeps the numbers
    priced = ready.with_bars(ready.bars.with_columns(pnl=pl.col("close") * 2.0))
    assert triple_barrier_labels(priced, tb, FixedCost(1.0)).equals(plain)
    assert triple_barrier_labels(priced, tb, FixedCost(1.0), pnl_price="pnl").height == plain.height


def test_other_rows_are_refused(shuffled: pl.DataFrame) -> None:
    ready = SortedBars.of(shuffled)
    with pytest.raises(DataError, match="rows given for"):
        ready.with_bars(ready.bars.head(10))
