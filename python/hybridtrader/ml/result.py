"""The typed result of one training (`MLPipeline.train_strategy_model`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import polars as pl

from hybridtrader.ml.gates import GateResult


@dataclass(frozen=True)
class BestTrial:
    """The chosen trial: a hyper-parameter set of the grid and a probability threshold."""

    index: int
    params: dict[str, float | int]
    threshold: float


@dataclass
class TrainingResult:
    """What a training found and did. `promoted`: every gate passed and the model is the champion.
    `reason` says why nothing was trained (too few samples); `model` is the final booster (None then).
    Registry fields (`model_id` "<strategy>/<version>", `version`, `run_id`, `alias`) are None when the
    registry is off. `metrics` holds the chosen trial's out-of-sample figures and the run's statistics."""

    strategy: str
    promoted: bool
    gates: list[GateResult]
    metrics: dict[str, float]
    features: list[str]
    reason: str | None = None
    best: BestTrial | None = None
    trials: list[dict[str, float]] = field(default_factory=list)  # param_set, threshold and metrics
    folds: list[dict[str, float]] = field(default_factory=list)  # the chosen trial per fold
    feature_hash: str = ""
    feature_importance: dict[str, float] = field(default_factory=dict)
    equity: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False)  # period, ret, equity
    validation_method: str = ""
    costs: str = ""
    market_neutral: bool = False
    model: Any = field(default=None, repr=False)  # lightgbm.Booster or xgboost.Booster
    model_id: str | None = None
    version: str | None = None
    run_id: str | None = None
    alias: str | None = None

    # Read access by field name, as the seed's callers use a result (`'model_id' in results`).
    def __contains__(self, key: object) -> bool:
        return key in _FIELDS

    def __getitem__(self, key: str) -> Any:
        if key not in _FIELDS:
            raise KeyError(f"TrainingResult has no field {key!r}")
        return getattr(self, key)

    def gate(self, name: str) -> GateResult:
        """The gate called `name` (KeyError naming the gates there are when absent)."""
        for g in self.gates:
            if g.name == name:
                return g
        raise KeyError(f"no gate {name!r}; gates: {[g.name for g in self.gates]}")


_FIELDS = frozenset(f.name for f in fields(TrainingResult))
