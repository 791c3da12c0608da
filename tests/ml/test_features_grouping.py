"""compute_features partitions its per-symbol windows by an integer run number of the sorted symbols, not by
the symbol string: on hypothesis-generated multi-symbol bars every feature equals, bit for bit, the earlier
definition (windows partitioned by the symbol string) computed on each symbol's bars alone.

The reference keeps a partition (`over("symbol")`, one group on one symbol) rather than none: Polars'
rolling std of a column with a leading null differs in the last bit between a partitioned and an
unpartitioned window (rv_3 on 21 bars), and the features have always been the partitioned values."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from helpers import symbol_bars
from hybridtrader.ml import features
from hybridtrader.ml.features import compute_features
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

# Every kind, default and short windows (short ones have values on short histories).
NAMES = ["zscore", "zscore_3", "volume_zscore_4", "rsi", "rsi_3", "atr_3", "natr_5", "adx_3", "adx",
         "ema_slope_3", "ema_slope", "trend_strength_6", "trend_strength", "ret_1", "ret_4", "rv_3",
         "spread_2", "spread"]  # fmt: skip


def by_symbol_string(x: pl.Expr) -> pl.Expr:
    return x.over("symbol")


def alone_by_symbol_string(bars: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> pl.DataFrame:
    """The reference: one symbol's features, its windows partitioned by the symbol string."""
    with monkeypatch.context() as m:
        m.setattr(features, "per_symbol", by_symbol_string)
        return compute_features(bars, NAMES)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=6),
    st.integers(0, 2**16),
    st.booleans(),
)
def test_grouped_windows_equal_each_symbol_alone(lengths: list[int], seed: int, quotes: bool) -> None:
    monkeypatch = pytest.MonkeyPatch()
    # Symbol names out of lexical order of their creation, so the run numbers follow the sorted names.
    parts = [symbol_bars(f"S{9 - i}", n, seed + i, quotes) for i, n in enumerate(lengths)]
    together = compute_features(pl.concat(parts), NAMES)
    assert together["symbol"].to_list() == sorted(together["symbol"].to_list())
    for part in parts:
        symbol = part["symbol"][0]
        got = together.filter(pl.col("symbol") == symbol)
        assert_frame_equal(got, alone_by_symbol_string(part, monkeypatch), check_exact=True)


def test_reference_is_not_trivially_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the partition, two symbols' windows run into each other: the reference must be computed
    symbol by symbol, and the grouped computation differs from the unpartitioned one on the second."""
    parts = [symbol_bars("A", 40, 1, False), symbol_bars("B", 40, 2, False)]
    together = pl.concat(parts)
    grouped = compute_features(together, ["zscore_3", "rsi_3"])
    with monkeypatch.context() as m:
        m.setattr(features, "per_symbol", lambda x: x)
        merged = compute_features(together, ["zscore_3", "rsi_3"])
    assert grouped.head(40).equals(merged.head(40))
    assert not grouped.tail(40).equals(merged.tail(40))


def one_expression_forms(bars: pl.DataFrame, n: int) -> pl.DataFrame:
    """zscore_n, volume_zscore_n and spread_n (Corwin-Schultz) each written as the single expression they
    were before their reused terms became columns, per symbol by the symbol string."""

    def lag(x: pl.Expr) -> pl.Expr:
        return pl.when(pl.col("symbol") == pl.col("symbol").shift(1)).then(x.shift(1))

    def finite(x: pl.Expr) -> pl.Expr:
        return pl.when(x.is_finite()).then(x).otherwise(None)

    def zscore(x: pl.Expr) -> pl.Expr:
        return finite((x - x.rolling_mean(n)) / x.rolling_std(n)).over("symbol")

    hl = (pl.col("high") / pl.col("low")).log() ** 2
    beta = hl + lag(hl)
    hi2 = pl.max_horizontal("high", lag(pl.col("high")))
    gamma = (hi2 / pl.min_horizontal("low", lag(pl.col("low")))).log() ** 2
    inv_k = 1.0 / (3.0 - 2.0 * np.sqrt(2.0))
    alpha = ((2.0 * beta).sqrt() - beta.sqrt()) * inv_k - (gamma * inv_k).sqrt()
    s = 2.0 * (alpha.exp() - 1.0) / (1.0 + alpha.exp())
    rel = pl.when(beta.is_null()).then(None).otherwise(s.clip(lower_bound=0.0))
    return bars.sort("symbol", "ts").select(
        "symbol",
        "ts",
        zscore(pl.col("close")).alias(f"zscore_{n}"),
        zscore(pl.col("volume").cast(pl.Float64)).alias(f"volume_zscore_{n}"),
        (1e4 * rel.rolling_mean(n)).over("symbol").alias(f"spread_{n}"),
    )


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=4),
    st.integers(0, 2**16),
    st.integers(2, 6),
)
def test_reused_terms_as_columns_equal_one_expression_forms(lengths: list[int], seed: int, n: int) -> None:
    bars = pl.concat([symbol_bars(f"S{i}", k, seed + i, quotes=False) for i, k in enumerate(lengths)])
    names = [f"zscore_{n}", f"volume_zscore_{n}", f"spread_{n}"]
    assert_frame_equal(compute_features(bars, names), one_expression_forms(bars, n), check_exact=True)
