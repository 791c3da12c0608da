"""What training would reject in a config, found before any data is loaded (`config check`, `train`)."""

from __future__ import annotations

from hybridtrader.config import Config
from hybridtrader.errors import ConfigError, ModelError
from hybridtrader.ml.features import parse_feature
from hybridtrader.ml.models import import_xgboost
from hybridtrader.ml.pipeline import DEFAULT_LABELS


def strategy_problems(config: Config) -> list[str]:
    """One line per problem of an enabled strategy's model settings (key path first)."""
    if not config.ml_training.enabled:
        return []
    problems = []
    for name, strategy in config.strategies.items():
        m = strategy.ml_model
        if not (strategy.enabled and m.enabled):
            continue
        where = f"strategies.{name}.ml_model"
        if not m.features:
            problems.append(f"{where}.features: empty (list the features the model learns from)")
        for feature in m.features:
            try:
                parse_feature(feature)
            except ValueError as e:
                problems.append(f"{where}.features: {e}")
        if m.label is None and name not in DEFAULT_LABELS:
            problems.append(f"{where}.label: not set (mean_reversion or triple_barrier)")
        if m.model_type == "xgboost":
            try:
                import_xgboost()
            except ModelError as e:
                problems.append(f"{where}.model_type: {e}")
    return problems


def check_strategies(config: Config) -> None:
    """Raise one ConfigError listing every problem `strategy_problems` finds."""
    problems = strategy_problems(config)
    if problems:
        raise ConfigError("config error at " + "; config error at ".join(problems))
