"""Promotion controls end to end (issue 15): a model is promoted only when it adds to its rule.

- Labels shuffled at random (the model can learn nothing; P&L stays real) on markets with a planted
  signal: never promoted, whatever the rule earns (several seeds, both strategies).
- A planted signal only a model can use (`regime_reversion`: fading every stretched move is about break-even,
  a volatility feature tells winners from losers): the model is promoted, the rule-only candidate is not.
- A rule that works by itself (planted mean reversion): the model is not credited; the rule alone is
  offered and registered as its own candidate.
- No signal: neither is promoted. Real daily S&P 500 prices (skfolio's bundled data set): nothing is
  promoted by accident.
- The permutation control: its p-value, its cost, and its gate.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hybridtrader.config import config_from_dict
from hybridtrader.market.synth import generate_market
from hybridtrader.ml.pipeline import RULE_ONLY_SUFFIX, MLPipeline, Prepared, Samples

MR, TREND = "intraday_mean_reversion", "swing_trend_following"


def settings(data_dir: Path, registry: bool = False, **ml: object) -> dict:
    base: dict = {
        "model": {"n_jobs": 1, "num_boost_round": 60, "early_stopping_rounds": 15},
        "model_registry": {"enabled": registry},
    }
    if registry:
        base["model_registry"] |= {
            "tracking_uri": f"sqlite:///{data_dir / 'mlflow.db'}",
            "artifact_location": (data_dir / "artifacts").as_uri(),
        }
    for k, v in ml.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return {"data_dir": str(data_dir), "ml_training": base}


class ShuffledLabels(MLPipeline):
    """The pipeline with the learned labels shuffled at random after labelling: the trades' returns stay
    real, so the rule's edge is there to be taken, but the model can learn nothing."""

    seed = 0

    def _label(self, prep: Prepared) -> Samples:
        s = super()._label(prep)
        return dataclasses.replace(s, y=np.random.default_rng(self.seed).permutation(s.y))


@pytest.mark.parametrize("seed", [12, 31, 47])
def test_shuffled_labels_on_planted_markets_are_never_promoted(tmp_path, seed: int) -> None:
    bars = generate_market(symbols=12, sessions=15, seed=seed, ticks=False, mean_reversion=0.5, trend=1.0)
    p = ShuffledLabels(config_from_dict(settings(tmp_path)))
    p.seed = seed
    for strategy in (MR, TREND):
        r = p.train_strategy_model(strategy, bars.bars_1m)
        assert not r.promoted, (strategy, r.gates, r.metrics)
        assert not r.gate("auc_lower_bound").passed or not r.gate("beats_rule").passed
        # no threshold at or below the base rate was tried: each could only take (nearly) every event
        assert all(t["threshold"] > r.metrics["positive_rate"] for t in r.trials)


@pytest.fixture(scope="module")
def regime_bars() -> pl.DataFrame:
    return generate_market(symbols=12, sessions=25, seed=1, ticks=False, regime_reversion=0.7).bars_1m


def test_a_signal_only_the_model_can_use_is_promoted_and_the_rule_is_not(tmp_path, regime_bars) -> None:
    r = MLPipeline(config_from_dict(settings(tmp_path, registry=True))).train_strategy_model(MR, regime_bars)
    assert r.promoted, (r.gates, r.metrics)
    m = r.metrics
    assert m["rule_sharpe"] < 0.0 < m["sharpe"]  # the rule alone loses after costs; the filter wins
    assert m["rule_gain_confidence"] >= 0.95 and m["auc_low"] > 0.5
    top = max(r.feature_importance, key=r.feature_importance.__getitem__)
    assert top in {"spread", "atr"}  # the bar-range features see the volatility regime
    assert r.rule is not None and not r.rule.offered and not r.rule.promoted
    assert r.alias == "champion"
    from mlflow.exceptions import MlflowException

    p = MLPipeline(config_from_dict(settings(tmp_path, registry=True)))
    with pytest.raises(MlflowException):  # nothing registered for the rule alone
        p.registry.client.get_registered_model(MR + RULE_ONLY_SUFFIX)


def test_a_rule_that_works_alone_is_offered_as_its_own_candidate(tmp_path) -> None:
    bars = generate_market(symbols=12, sessions=15, seed=12, ticks=False, mean_reversion=0.5).bars_1m
    p = MLPipeline(config_from_dict(settings(tmp_path, registry=True)))
    r = p.train_strategy_model(MR, bars)
    assert not r.promoted and r.alias == "challenger"
    assert r.metrics["rule_sharpe"] > 1.0 and r.metrics["rule_gain_confidence"] < 0.95
    assert r.rule is not None and r.rule.offered
    assert "rule alone is offered" in r.verdict
    name = MR + RULE_ONLY_SUFFIX
    client = p.registry.client
    version = client.get_model_version(name, r.rule.version)
    assert version.tags["candidate"] == "rule_only"
    alias = "champion" if r.rule.promoted else "challenger"
    assert r.rule.alias == alias and p.registry.alias_version(name, alias) == r.rule.version
    assert all(g.passed for g in r.rule.gates) == r.rule.promoted
    run = client.get_run(version.run_id)
    assert run.data.tags["candidate"] == "rule_only" and run.data.tags["model_run_id"] == r.run_id
    assert {a.path for a in client.list_artifacts(version.run_id)} >= {"rule.json", "gates.json"}
    # The model's run recorded the rule's trial: the next training on these bars counts it.
    again = p.train_strategy_model(MR, bars)
    assert again.rule is not None and again.rule.metrics["n_trials"] == 2


def test_no_signal_promotes_neither(tmp_path) -> None:
    bars = generate_market(symbols=12, sessions=15, seed=11, ticks=False).bars_1m
    p = MLPipeline(config_from_dict(settings(tmp_path)))
    for strategy in (MR, TREND):
        r = p.train_strategy_model(strategy, bars)
        assert not r.promoted and r.rule is not None and not r.rule.promoted, (strategy, r.metrics)


def sp500_daily_bars(first: str) -> pl.DataFrame:
    """Real daily closes of 20 S&P 500 stocks (skfolio's bundled data, no network) as bars stamped at the
    16:00 New York close; the data set has closes only, so open = high = low = close and volume is flat."""
    from skfolio.datasets import load_sp500_dataset

    prices = pl.from_pandas(load_sp500_dataset().loc[first:], include_index=True)
    date = prices.columns[0]
    long = prices.unpivot(index=date, variable_name="symbol", value_name="close").drop_nulls("close")
    close = pl.col(date).cast(pl.Datetime("ns")) + pl.duration(hours=16)
    ts = close.dt.replace_time_zone("America/New_York")
    return long.select(
        "symbol",
        ts.dt.convert_time_zone("UTC").alias("ts"),
        *(pl.col("close").alias(c) for c in ("open", "high", "low")),
        "close",
        pl.lit(1e6).alias("volume"),
    ).sort("symbol", "ts")


@pytest.mark.parametrize("first", ["2013-01-01", "2018-01-01"])
def test_real_daily_sp500_history_promotes_nothing(tmp_path, first: str) -> None:
    bars = sp500_daily_bars(first)
    assert bars["symbol"].n_unique() == 20 and bars.height > 20 * 1000
    cfg = settings(
        tmp_path,
        labels={"triple_barrier": {"vol_span": 20, "horizon_bars": 10, "trend_window": 20,
                                   "entry_strength": 0.5, "event_spacing_bars": 2}},
        backtest={"use_slippage_model": False, "cost_bps": 5.0},
    )  # fmt: skip
    cfg["strategies"] = {
        TREND: {"ml_model": {"features": ["ema_slope", "adx", "atr", "trend_strength", "ret_20", "rv"]}},
        MR: {"ml_model": {"features": ["zscore", "rsi", "atr", "ret_1", "ret_5"]}},
    }
    p = MLPipeline(config_from_dict(cfg))
    trend = p.train_strategy_model(TREND, bars)
    assert trend.metrics["n_samples"] > 1000
    assert not trend.promoted and trend.rule is not None and not trend.rule.promoted, trend.metrics
    mr = p.train_strategy_model(MR, bars)
    assert not mr.promoted and mr.rule is not None and not mr.rule.promoted, mr.metrics


def test_permutation_control_reports_and_gates(tmp_path, regime_bars) -> None:
    cfg = settings(tmp_path, gates={"max_permutation_p": 0.2}, controls={"permutation_runs": 2})
    r = MLPipeline(config_from_dict(cfg)).train_strategy_model(MR, regime_bars, permutation_runs=4)
    m = r.metrics
    assert m["permutation_runs"] == 4 and m["permutation_p"] == pytest.approx(1 / 5)  # the real one is best
    assert m["permutation_null_gain_max"] < m["sharpe_gain"]
    assert abs(m["permutation_null_auc_mean"] - 0.5) < 0.05
    assert m["permutation_seconds_per_run"] > 0
    assert r.gate("permutation_p").passed and r.promoted
    # The gate without runs cannot pass: there is no evidence.
    none = MLPipeline(config_from_dict(cfg)).train_strategy_model(MR, regime_bars, permutation_runs=0)
    assert none.metrics["permutation_p"] == 1.0
    assert not none.gate("permutation_p").passed and not none.promoted
    with pytest.raises(ValueError, match="permutation_runs"):
        MLPipeline(config_from_dict(cfg)).train_strategy_model(MR, regime_bars, permutation_runs=-1)
