"""The `regime_reversion` knob: reversal in volatile minutes, continuation in calm ones, absent at 0."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hybridtrader.market.synth import generate_market


def lag1_by_range(bars: pl.DataFrame) -> tuple[float, float]:
    """Lag-1 correlation of 1-minute log returns inside a session, for pairs whose first minute's
    high-low range (relative) is above the median and below it."""
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    r = (
        bars.sort("symbol", "ts")
        .with_columns(
            y=pl.col("close").log().diff().over("symbol", day),
            rng=(pl.col("high") / pl.col("low")).log(),
        )
        .with_columns(
            x=pl.col("y").shift(1).over("symbol", day), x_rng=pl.col("rng").shift(1).over("symbol", day)
        )
        .drop_nulls(["x", "y", "x_rng"])
    )
    high = r["x_rng"] > r["x_rng"].median()

    def corr(f: pl.DataFrame) -> float:
        return float(np.corrcoef(f["x"].to_numpy(), f["y"].to_numpy())[0, 1])

    return corr(r.filter(high)), corr(r.filter(~high))


def test_regime_reversion_reverts_in_volatile_minutes_and_continues_in_calm_ones() -> None:
    off = generate_market(symbols=8, sessions=6, seed=5, ticks=False)
    on = generate_market(symbols=8, sessions=6, seed=5, ticks=False, regime_reversion=0.6)
    hi_off, lo_off = lag1_by_range(off.bars_1m)
    hi_on, lo_on = lag1_by_range(on.bars_1m)
    # Without the knob only cent rounding's small negative correlation is there (largest in wide bars).
    assert -0.07 < hi_off < 0.02 and abs(lo_off) < 0.03, (hi_off, lo_off)
    # reversal in volatile minutes; continuation in calm ones (the bar range sorts minutes imperfectly)
    assert hi_on < hi_off - 0.1 and lo_on > lo_off + 0.025, (hi_on, lo_on)
    assert on.params["regime_reversion"] == 0.6


def test_regime_reversion_at_zero_is_exactly_absent() -> None:
    base = generate_market(symbols=2, sessions=2, seed=3, ticks=False)
    zero = generate_market(symbols=2, sessions=2, seed=3, ticks=False, regime_reversion=0.0)
    assert base.bars_1m.equals(zero.bars_1m)
    with pytest.raises(ValueError, match="regime_reversion must be in"):
        generate_market(symbols=2, sessions=1, ticks=False, regime_reversion=1.0)
