"""Promotion gates: a model is promoted only when every gate passes on its out-of-sample evaluation.

The performance gates (Sharpe, drawdown, trades, win rate, deflated Sharpe) judge a strategy's own P&L and
apply to the model-filtered strategy and to the rule-only candidate alike. The model gates ask what the
model adds: out-of-sample discrimination whose confidence interval lies above 0.5, a Sharpe above the
unfiltered rule's on the same periods with bootstrap confidence, and optionally the permutation control.
A strategy without out-of-sample trades fails the drawdown gate too: there was nothing to draw down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from hybridtrader.config import GatesConfig
from hybridtrader.ml.evaluation import EvaluationResult


@dataclass(frozen=True)
class GateResult:
    name: str
    value: float
    threshold: float
    op: Literal[">=", "<="]
    passed: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _gate(name: str, value: float, threshold: float, op: Literal[">=", "<="]) -> GateResult:
    passed = value >= threshold if op == ">=" else value <= threshold
    return GateResult(name, float(value), float(threshold), op, bool(passed))


def evaluate_gates(result: EvaluationResult, deflated_sharpe: float, cfg: GatesConfig) -> list[GateResult]:
    drawdown = _gate("max_drawdown", result.max_drawdown, cfg.max_drawdown, "<=")
    if result.n_trades == 0:
        drawdown = GateResult(drawdown.name, drawdown.value, drawdown.threshold, drawdown.op, False)
    return [
        _gate("sharpe", result.sharpe, cfg.min_sharpe, ">="),
        drawdown,
        _gate("trades", result.n_trades, cfg.min_trades, ">="),
        _gate("win_rate", result.win_rate, cfg.min_win_rate, ">="),
        _gate("deflated_sharpe", deflated_sharpe, cfg.min_deflated_sharpe, ">="),
    ]


def model_gates(auc_low: float, rule_gain_confidence: float, cfg: GatesConfig) -> list[GateResult]:
    """`auc_low`: lower end of the out-of-sample AUC's interval at `cfg.auc_confidence`; it must exceed
    0.5. `rule_gain_confidence`: bootstrap share of resamples in which the model's Sharpe beats the rule's."""
    auc = _gate("auc_lower_bound", auc_low, 0.5, ">=")
    auc = GateResult(auc.name, auc.value, auc.threshold, auc.op, auc_low > 0.5)
    return [auc, _gate("beats_rule", rule_gain_confidence, cfg.min_rule_gain_confidence, ">=")]


def permutation_gate(p_value: float, max_p: float) -> GateResult:
    return _gate("permutation_p", p_value, max_p, "<=")


def all_passed(gates: list[GateResult]) -> bool:
    return bool(gates) and all(g.passed for g in gates)
