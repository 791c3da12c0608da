"""The faster assembly of a training's inputs gives exactly what the straightforward one gives: an event's
features gathered by its bar row equal a join of the labels with the features on (symbol, ts); the
feature-store file written in the background is complete when `flush` returns, and a failed write is
raised, not lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hybridtrader.config import config_from_dict
from hybridtrader.market.synth import generate_market
from hybridtrader.ml.feature_store import FeatureStore
from hybridtrader.ml.features import compute_features
from hybridtrader.ml.pipeline import MLPipeline
from polars.testing import assert_frame_equal


@pytest.mark.parametrize("strategy", ["intraday_mean_reversion", "swing_trend_following"])
def test_samples_by_bar_row_equal_the_join(tmp_path: Path, strategy: str) -> None:
    bars = generate_market(symbols=6, sessions=4, seed=5, ticks=False, mean_reversion=0.5).bars_1m
    pipe = MLPipeline(
        config_from_dict({"data_dir": str(tmp_path), "ml_training": {"model_registry": {"enabled": False}}})
    )
    prep = pipe._prepare(strategy, bars.sample(fraction=1.0, shuffle=True, seed=1), lambda *a: None)
    got = pipe._label(prep)
    pipe.feature_store.flush()

    events, _ = pipe._labels(prep)
    feats = compute_features(bars, prep.names).rename({"ts": "t0"})  # recomputed from the raw bars
    want = events.join(feats, on=["symbol", "t0"], how="inner").drop_nulls(prep.names).sort("t0", "symbol")
    assert want.height > 100
    assert_frame_equal(got.events, want, check_exact=True)
    np.testing.assert_array_equal(got.x, want.select(prep.names).to_numpy())
    np.testing.assert_array_equal(got.y, want["label"].to_numpy())
    # The bar column is each event's row in the (symbol, ts)-sorted bars.
    sorted_bars = bars.sort("symbol", "ts")
    rows = got.events["bar"].to_numpy()
    assert sorted_bars["symbol"].gather(rows).equals(got.events["symbol"])
    assert sorted_bars["ts"].gather(rows).equals(got.events["t0"].alias("ts"))


def test_background_write_is_complete_after_flush_and_its_failure_is_raised(tmp_path: Path) -> None:
    bars = generate_market(symbols=2, sessions=1, seed=3, ticks=False).bars_1m
    store = FeatureStore(tmp_path / "features")
    frame = store.get(bars, ["rsi", "atr"])
    store.flush()
    path = store.path_for(["rsi", "atr"], bars)
    assert_frame_equal(pl.read_parquet(path), frame, check_exact=True)

    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the store's root should be")
    failing = FeatureStore(blocked)
    failing.get(bars, ["rsi"])  # the frame is returned; its file cannot be written
    with pytest.raises(OSError):
        failing.flush()
    failing.flush()  # reported once
