"""Trade signals of a trained strategy model on bars: the strategy's primary rule gives the event and its
side, the model's probability (meta-label: "this trade pays net of costs") decides whether to take it.

The primary rules are those of `hybridtrader.ml.labels` (`mean_reversion_entries`, `trend_entries`: the
model was trained on exactly these events); a mean-reversion trade targets the entry-time SMA_w, and every
trade lasts at most `horizon_bars` bars.
Features are causal (each row uses bars at or before it), so computing them once over the whole range and
reading a row when its bar has closed is what a live loop recomputing them every minute would see.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from hybridtrader.config import Config
from hybridtrader.errors import DataError, ModelError
from hybridtrader.ml.features import compute_features, normalise_bars
from hybridtrader.ml.labels import mean_reversion_entries, rule_feature, trend_entries
from hybridtrader.ml.models import Fitted, predict
from hybridtrader.ml.pipeline import DEFAULT_LABELS

SIGNAL_SCHEMA = {
    "strategy": pl.String, "symbol": pl.String, "ts": pl.Datetime("ns", "UTC"), "side": pl.Int8,
    "prob": pl.Float64, "close": pl.Float64, "atr": pl.Float64, "target": pl.Float64,
    "horizon_bars": pl.Int64,
}  # fmt: skip


def label_kind(config: Config, strategy: str) -> str:
    kind = config.strategies[strategy].ml_model.label or DEFAULT_LABELS.get(strategy)
    if kind is None:
        raise DataError(f"strategies.{strategy}.ml_model.label: not set and no default for {strategy!r}")
    return kind


def load_champion(config: Config, strategy: str, version: str) -> Any:
    """The booster of `strategy` version `version` from the MLflow registry; it must be the champion."""
    from hybridtrader.ml.registry import CHAMPION, ModelRegistry

    reg = ModelRegistry(config)
    champion = reg.alias_version(strategy, CHAMPION)
    if champion != str(version):
        raise ModelError(f"{strategy}: the champion is version {champion}, not the promoted {version}")
    return reg.load_version(strategy, str(version))[0]


def strategy_signals(
    config: Config,
    strategy: str,
    model: Any,
    threshold: float,
    bars: pl.DataFrame,
    start: Any,
    end: Any,
) -> pl.DataFrame:
    """Signals (SIGNAL_SCHEMA) of bars with start <= ts < end whose event the model takes (probability >=
    `threshold`); `bars` holds the history the features need before `start`."""
    mcfg = config.strategies[strategy].ml_model
    names = list(mcfg.features)
    labels = config.ml_training.labels
    kind = label_kind(config, strategy)
    frame = normalise_bars(bars)
    rule = rule_feature(labels.mean_reversion if kind == "mean_reversion" else labels.triple_barrier)
    extra = [rule, "atr"]
    wanted = list(dict.fromkeys([*names, *extra]))
    feats = compute_features(frame, wanted).join(
        frame.select("symbol", "ts", "close").with_columns(
            _mean=pl.col("close").rolling_mean(labels.mean_reversion.window).over("symbol"),
            _row=pl.int_range(pl.len()).over("symbol"),
        ),
        on=["symbol", "ts"],
    )
    window = feats.filter((pl.col("ts") >= start) & (pl.col("ts") < end)).drop_nulls([*names, rule, "atr"])
    x = window[rule].to_numpy()
    if kind == "mean_reversion":
        event, side = mean_reversion_entries(x, labels.mean_reversion)
        target = window["_mean"].to_numpy()
        horizon = labels.mean_reversion.horizon_bars
    else:
        event, side = trend_entries(x, window["_row"].to_numpy(), labels.triple_barrier)
        target = np.full(window.height, np.nan)
        horizon = labels.triple_barrier.horizon_bars
    event &= window["atr"].to_numpy() > 0
    rows = window.filter(pl.Series(event))
    if rows.height == 0:
        return pl.DataFrame(schema=SIGNAL_SCHEMA)
    prob = predict(
        Fitted(model, 0, 0.0, np.empty(0)), rows.select(names).to_numpy().astype(np.float64), names
    )
    out = pl.DataFrame({
        "strategy": strategy, "symbol": rows["symbol"], "ts": rows["ts"], "side": side[event].astype(np.int8),
        "prob": prob, "close": rows["close"], "atr": rows["atr"], "target": target[event],
        "horizon_bars": horizon,
    }, schema=SIGNAL_SCHEMA)  # fmt: skip
    return out.filter(pl.col("prob") >= threshold).sort("ts", "symbol")
