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
class RuleCandidate:
    """The rule alone (every event taken, no model) on the same out-of-sample periods, judged by the same
    performance gates. `offered`: the rule made money and the model was not promoted, so the rule is
    registered as its own candidate (registered model `<strategy>-rule-only`)."""

    gates: list[GateResult]
    metrics: dict[str, float]
    equity: pl.DataFrame = field(repr=False)
    offered: bool = False
    model_id: str | None = None
    version: str | None = None
    alias: str | None = None

    @property
    def promoted(self) -> bool:
        return self.offered and bool(self.gates) and all(g.passed for g in self.gates)


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
    rule: RuleCandidate | None = None
    # provenance
    data_start: str = ""
    data_end: str = ""
    n_symbols: int = 0
    fold_dates: list[dict[str, str]] = field(default_factory=list)  # per fold: train and test ranges

    @property
    def verdict(self) -> str:
        """One plain sentence: what this training shows."""
        if self.reason:
            return f"not trained: {self.reason}"
        if self.promoted:
            return "the model adds to the rule beyond chance and passed every gate: promoted"
        rule = self.rule
        if rule is not None and rule.offered:
            status = "promoted by the same gates" if rule.promoted else "rejected by the gates"
            return (
                "the rule is profitable but the model adds nothing that survives the tests; the rule alone "
                f"is offered as its own candidate ({status})"
            )
        return "neither the model nor the rule shows an edge that survives the gates"

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
