"""The HTML training report says what a quant needs: provenance, costs, model against rule, AUC interval,
the permutation result, and plainly when a strategy made no out-of-sample trades."""

from __future__ import annotations

from datetime import date

import polars as pl
from hybridtrader.config import GatesConfig
from hybridtrader.ml.evaluation import EvaluationResult
from hybridtrader.ml.gates import evaluate_gates, model_gates
from hybridtrader.ml.report import write_report
from hybridtrader.ml.result import BestTrial, RuleCandidate, TrainingResult


def result(n_trades: int, permutations: int) -> TrainingResult:
    equity = pl.DataFrame({"period": pl.date_range(date(2024, 1, 2), date(2024, 1, 5), eager=True),
                           "ret": [0.0] * 4, "equity": [1.0] * 4})  # fmt: skip
    flat = EvaluationResult(0.0, 0.0, 0.0, 3.0, 4, 0.0, n_trades, 0.0, 0.0, 0.5, equity)
    rule = EvaluationResult(2.0, 0.1, 0.0, 3.0, 4, 0.01, 40, 0.6, 0.02, 0.9, equity)
    gates = evaluate_gates(flat, 0.1, GatesConfig()) + model_gates(0.48, 0.2, GatesConfig())
    metrics = {**flat.metrics(), "n_trials": 8.0, "auc": 0.51, "auc_low": 0.48, "auc_high": 0.54,
               "auc_confidence": 0.95, "rule_gain_confidence": 0.2, "sharpe_gain": -2.0,
               "sharpe_gain_low": -3.0, "sharpe_gain_high": -1.0, "positive_rate": 0.7,
               "n_thresholds_tried": 3.0}  # fmt: skip
    if permutations:
        metrics |= {"permutation_runs": float(permutations), "permutation_p": 0.5,
                    "permutation_null_gain_mean": -2.5, "permutation_null_gain_max": -1.5,
                    "permutation_null_auc_mean": 0.5,
                    "permutation_seconds_per_run": 1.5}  # fmt: skip
    return TrainingResult(
        strategy="s", promoted=False, gates=gates, metrics=metrics, features=["a"],
        best=BestTrial(0, {}, 0.75),
        feature_importance={"a": 1.0}, equity=equity, validation_method="walk_forward",
        costs="fixed 1.0 bps per side",
        rule=RuleCandidate(evaluate_gates(rule, 0.99, GatesConfig()), {**rule.metrics(), "n_trials": 1.0},
                           equity, offered=True, model_id="s-rule-only/1", version="1", alias="champion"),
        data_start="2024-01-02 14:30:00+00:00", data_end="2024-01-05 21:00:00+00:00", n_symbols=3,
        fold_dates=[{"train": "2024-01-02 14:30 .. 2024-01-03 21:00",
                     "test": "2024-01-04 14:30 .. 2024-01-05 21:00"}],
    )  # fmt: skip


def test_report_states_provenance_costs_comparison_and_no_trades(tmp_path) -> None:
    page = write_report([result(0, 0)], tmp_path, "synthetic market: seed 7, trend 0.5").read_text()
    assert "synthetic market: seed 7, trend 0.5" in page and "2024-01-02 14:30 .. 2024-01-03 21:00" in page
    assert "fixed 1.0 bps per side" in page and "3 symbols" in page
    assert "model-filtered (threshold 0.75)" in page and "rule alone (every event)" in page
    assert "95% DeLong interval 0.480 to 0.540" in page and "in 20.0% of paired" in page
    assert "The model-filtered strategy made no out-of-sample trades" in page
    assert "The rule alone made no" not in page  # the rule traded
    assert "registered as s-rule-only/1 (champion)" in page and "rule alone is offered" in page
    assert "Permutation control: not run" in page
    # no trades: the drawdown gate of the model is a FAIL row, not a pass
    assert "<td>max_drawdown</td><td>0</td><td>&lt;= 0.2</td><td>FAIL</td>" in page
    assert (tmp_path / "s_rule_equity.svg").exists()


def test_report_shows_the_permutation_result(tmp_path) -> None:
    page = write_report([result(12, 19)], tmp_path).read_text()
    assert "19 retrainings on labels shuffled within each validation block" in page
    assert "p-value 0.500" in page and "1.5 s per run" in page
    assert "made no out-of-sample trades" not in page and "data</td><td>not stated" in page


def test_cli_train_with_permutations_reports_them(tmp_path, capsys, monkeypatch) -> None:
    import yaml
    from hybridtrader.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    cfg = {"data_dir": str(tmp_path / "data"),
           "ml_training": {"model": {"n_jobs": 1, "num_boost_round": 30, "early_stopping_rounds": 10},
                           "model_registry": {"enabled": False}}}  # fmt: skip
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    args = ["train", "--config", str(cfg_file), "--strategy", "intraday_mean_reversion", "--symbols", "6"]
    args += ["--sessions", "8", "--seed", "4", "--regime-reversion", "0.5", "--permutations", "1"]
    assert main([*args, "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "beats_rule" in out and "auc_lower_bound" in out
    page = (tmp_path / "r" / "index.html").read_text()
    assert "1 retrainings on labels shuffled within each validation block" in page
    assert "regime_reversion 0.5" in page and "seed 4" in page  # provenance of the synthetic market


def test_report_of_a_strategy_rejected_without_training(tmp_path) -> None:
    """Too few samples: `not_trained`'s result has no equity columns; the report still renders, with an
    empty chart and the reason (it used to raise ColumnNotFoundError and lose the run)."""
    from hybridtrader.ml.pipeline import not_trained

    r = not_trained("s", "only 65 labelled samples with complete features (need 100)", ["a"], GatesConfig())
    page = write_report([r], tmp_path).read_text()
    assert "only 65 labelled samples" in page and "rejected (challenger)" in page
    svg = (tmp_path / "s_equity.svg").read_text()
    assert svg.startswith("<svg") and "polyline" not in svg
