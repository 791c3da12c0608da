"""Promotion gates: a model is promoted only when every gate passes on its out-of-sample evaluation."""

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
    return [
        _gate("sharpe", result.sharpe, cfg.min_sharpe, ">="),
        _gate("max_drawdown", result.max_drawdown, cfg.max_drawdown, "<="),
        _gate("trades", result.n_trades, cfg.min_trades, ">="),
        _gate("win_rate", result.win_rate, cfg.min_win_rate, ">="),
        _gate("deflated_sharpe", deflated_sharpe, cfg.min_deflated_sharpe, ">="),
    ]


def all_passed(gates: list[GateResult]) -> bool:
    return bool(gates) and all(g.passed for g in gates)
