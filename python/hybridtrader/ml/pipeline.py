"""MLPipeline: features -> labels -> purged validation of every trial -> gates -> MLflow registry.

Stages: prepare (bars, features, costs), label, folds, select, permutation control (optional), final fit,
register. `train_strategy_model` returns a `TrainingResult`; `train_strategy_models` trains several strategies
on the same bars, each one's registration running in the background while the next one trains.

Trials and honesty: every (hyper-parameter set of `ml_training.model.param_grid`) x (probability threshold
of `ml_training.backtest.thresholds` above the labels' base rate over all samples; a threshold at or below
it would take nearly every event and decide nothing) is one trial, scored by the Sharpe of its
out-of-sample evaluation. The best trial is the candidate; the deflated Sharpe gate deflates it by the
number of trials, counting this run's trials *and* every earlier recorded trial of the strategy on the same
bars, whatever its settings (retrying features or parameters on the same data is data snooping too), with
V the variance of all those trials' Sharpe ratios.

The model must add something to its rule: the unfiltered rule (every event taken) is evaluated on the same
out-of-sample events and periods, and the model is promoted only when its Sharpe beats the rule's in a
paired stationary bootstrap of the two per-period return series (`gates.min_rule_gain_confidence`) and its
out-of-sample AUC's DeLong interval lies above 0.5 (`gates.auc_confidence`), besides the performance gates.
The permutation control (`permutation_runs`) retrains on labels shuffled within each validation block and
reports where the real Sharpe gain over the rule falls among the shuffled ones (`gates.max_permutation_p`
makes it a gate). When the model is not promoted but the rule made money, the rule alone is registered as
its own candidate (`<strategy>-rule-only`), judged by the same performance gates.

Costs come from `hybridtrader.SlippageModel` (calibrated on the training bars) unless switched off; swing
P&L is measured against the equal-weighted basket (`ml_model.market_neutral`), so holding the market's
drift is not mistaken for skill. Too little history for the windows gives a rejection, not an exception.

The fold loop (and each permutation run) is a set of independent `FoldTask`s (sample indices into one
shared feature matrix) run by `hybridtrader.tasks` on the configured `compute` backend: sequential, a local
process pool, or Ray.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import polars as pl

from hybridtrader.config import (
    Config,
    GatesConfig,
    MeanReversionLabelConfig,
    TripleBarrierLabelConfig,
    as_config,
)
from hybridtrader.errors import ConfigError, DataError
from hybridtrader.market.timeconv import epoch_ns
from hybridtrader.ml.costs import CostModel, FixedCost, SlippageCost, SlippageForecaster, describe
from hybridtrader.ml.evaluation import (
    EvaluationResult,
    Marks,
    Periods,
    basket_relative,
    evaluate_events,
    session_of,
)
from hybridtrader.ml.feature_store import FeatureStore, data_hash
from hybridtrader.ml.features import SortedBars, feature_hash
from hybridtrader.ml.gates import GateResult, all_passed, evaluate_gates, model_gates, permutation_gate
from hybridtrader.ml.labels import (
    is_intraday,
    mean_reversion_labels,
    rule_feature,
    time_slots,
    triple_barrier_labels,
)
from hybridtrader.ml.models import (
    FitSettings,
    Fitted,
    FoldData,
    FoldResult,
    FoldTask,
    ModelType,
    fit,
    run_folds,
)
from hybridtrader.ml.registry import ModelRegistry, RunRecord, code_version
from hybridtrader.ml.report import equity_svg, importance_svg
from hybridtrader.ml.result import BestTrial, RuleCandidate, TrainingResult
from hybridtrader.ml.sharpe import deflated_sharpe_ratio, expected_max_sharpe, min_track_record_length
from hybridtrader.ml.significance import (
    auc,
    auc_interval,
    permutation_p_value,
    sharpe_difference,
)
from hybridtrader.ml.validation import Split, inner_split, purged_kfold_splits, walk_forward_splits
from hybridtrader.tasks import machine_threads

if TYPE_CHECKING:
    from hybridtrader.monitoring.alerts import EnhancedAlertManager

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)

DEFAULT_LABELS = {"intraday_mean_reversion": "mean_reversion", "swing_trend_following": "triple_barrier"}
SCHEDULE_DAYS = {"daily": 1.0, "weekly": 7.0, "monthly": 30.0}
MIN_SAMPLES = 100  # labelled samples below which nothing is trained


def session_closes(bars: pl.DataFrame, sessions: pl.Series | None = None) -> pl.DataFrame:
    """Per symbol and session: the last bar time, the last close and the summed volume (no open, high or
    low): what `SlippageModel.learn_from_daily_bars` reads for ADV and daily volatility. `sessions`:
    `session_of(bars["ts"])` when the caller holds it."""
    session = session_of(bars["ts"]) if sessions is None else sessions
    return (
        bars.group_by("symbol", session.alias("session"))
        .agg(pl.col("ts").max(), pl.col("close").sort_by("ts").last(), pl.col("volume").sum())
        .drop("session")
    )


def not_trained(strategy: str, reason: str, names: list[str], gates_cfg: GatesConfig) -> TrainingResult:
    """The result of a training that could not run: rejected, every gate evaluated on no trades."""
    empty = EvaluationResult(0.0, 0.0, 0.0, 3.0, 0, 0.0, 0, 0.0, 0.0, 0.5, pl.DataFrame())
    return TrainingResult(
        strategy=strategy,
        promoted=False,
        reason=reason,
        gates=evaluate_gates(empty, 0.0, gates_cfg),
        metrics={**empty.metrics(), "deflated_sharpe": 0.0, "n_samples": 0.0},
        features=names,
    )


@dataclass(frozen=True)
class Trial:
    index: int
    param_set: int
    threshold: float
    result: EvaluationResult


@dataclass(frozen=True)
class Prepared:
    """Stage 1 (prepare): the normalised bars (basket-relative P&L price added when market-neutral),
    their shared feature frame and the cost model."""

    strategy: str
    names: list[str]
    sorted: SortedBars  # the bars, with their symbols' row and run numbers for the label passes
    shared: pl.DataFrame  # every ML strategy's features on these bars
    dhash: str
    costs: CostModel
    n_symbols: int
    neutral: bool
    pnl_price: str
    intraday: bool
    times: np.ndarray  # sorted distinct bar times, int64 ns
    sessions: pl.Series  # each bar's session (New York date), row for row
    slots: np.ndarray  # each bar's position in `times`, row for row

    @property
    def bars(self) -> pl.DataFrame:
        return self.sorted.bars


@dataclass(frozen=True)
class InputBars:
    """An input frame's normalised bars and what every training on them reads from all their rows."""

    sorted: SortedBars  # the normalised bars ((symbol, ts) order, ts in ns UTC), row and run numbers
    dhash: str
    intraday: bool
    times: np.ndarray  # sorted distinct bar times, int64 ns
    n_symbols: int
    sessions: pl.Series  # each bar's session (New York date), row for row
    slots: np.ndarray  # each bar's position in `times`, row for row

    @classmethod
    def of(cls, frame: pl.DataFrame) -> InputBars:
        # One buffer per column (a frame concatenated per symbol has a chunk each): every stage reads these
        # columns, as numpy arrays without a copy.
        ready = SortedBars.of(frame.rechunk())
        bars = ready.bars
        with ThreadPoolExecutor(1, thread_name_prefix="ml-bars") as side:
            # The content hash (row hashes and sorts, outside the GIL) beside the rest on another core.
            dhash = side.submit(data_hash, bars)
            distinct = bars["ts"].unique().sort()  # ns since the epoch: the times, and the sessions' keys
            n_symbols = int(ready.group[-1]) + 1  # the symbols' runs in (symbol, ts) order: one per symbol
            slots = time_slots(bars["ts"], distinct)
            sessions = session_of(bars["ts"], distinct, slots)
            times = distinct.to_physical().to_numpy()
            intraday = is_intraday(ready)
        return cls(ready, dhash.result(), intraday, times, n_symbols, sessions, slots)

    @property
    def bars(self) -> pl.DataFrame:
        return self.sorted.bars


@dataclass(frozen=True)
class Samples:
    """Stage 2 (label): labelled events with complete features, in (t0, symbol) order, as arrays."""

    events: pl.DataFrame
    horizon: int
    x: np.ndarray
    y: np.ndarray
    t0: np.ndarray  # int64 ns
    t1: np.ndarray
    times: np.ndarray  # sorted distinct bar times, int64 ns


@dataclass(frozen=True)
class FoldOutput:
    """Stage 3 (folds): every parameter set's out-of-sample probabilities; a sample tested by several
    folds keeps its first (`tested` holds that fold, -1 when never tested)."""

    splits: list[Split]
    results: list[FoldResult]
    tested: np.ndarray
    probs: np.ndarray  # [param set, sample]

    @property
    def oos_rows(self) -> np.ndarray:
        return np.flatnonzero(self.tested >= 0)


@dataclass(frozen=True)
class Selection:
    """Stage 4 (select): every trial's out-of-sample evaluation, the best one, its gates and figures."""

    trials: list[Trial]
    best: Trial
    rule: EvaluationResult  # the unfiltered rule: every out-of-sample event taken
    current_sharpes: list[float]  # every (parameter set, threshold) trial of this run
    gates: list[GateResult]
    rule_gates: list[GateResult]
    metrics: dict[str, float]
    rule_metrics: dict[str, float]
    folds: list[dict[str, float]]
    periods: Periods


@dataclass(frozen=True)
class OosBook:
    """What every evaluation of out-of-sample probabilities shares: the events, P&L periods, marks,
    sizing and the thresholds tried."""

    rows: np.ndarray  # out-of-sample sample rows
    events: pl.DataFrame
    periods: Periods
    span: tuple[int, int]
    marks: Marks
    weight: float
    thresholds: list[float]
    holding_periods: int  # the longest out-of-sample trade, in periods

    def trials(self, probs: np.ndarray) -> list[Trial]:
        """Every (parameter set, threshold) trial on `probs` [param set, sample]."""
        out: list[Trial] = []
        for p in range(probs.shape[0]):
            for th in self.thresholds:
                res = evaluate_events(
                    self.events, probs[p, self.rows], th, self.weight, self.periods, self.span, self.marks
                )
                out.append(Trial(len(out), p, th, res))
        return out

    def rule(self) -> EvaluationResult:
        every = np.ones(len(self.rows))
        return evaluate_events(self.events, every, 0.5, self.weight, self.periods, self.span, self.marks)


def best_trial(trials: list[Trial]) -> Trial:
    return max(trials, key=lambda t: (t.result.sharpe_per_period, -t.index))


class MLPipeline:
    def __init__(
        self,
        config: Config | dict[str, Any] | None = None,
        slippage_model: SlippageForecaster | None = None,
        alert_manager: EnhancedAlertManager | None = None,
    ) -> None:
        """`config`: a `Config`, the parsed YAML mapping (validated here), or None for all defaults."""
        self.config = as_config(config)
        self.slippage_model = slippage_model
        self.feature_store = FeatureStore(self.config.data_dir / "features")
        self._alerts = alert_manager
        self._registry: ModelRegistry | None = None
        self._costs: tuple[tuple[str, bytes], CostModel] | None = None
        # The last input frame (held, so it is that very object) and what is read from all its bars:
        # training the next strategy on the same frame reuses them instead of re-reading every bar.
        self._input: tuple[pl.DataFrame, InputBars] | None = None
        self._pending: Future[None] | None = None  # a registration running in the background
        self._periods: tuple[tuple[str, int | None, int], Periods] | None = None  # see `_periods_of`

    # ------------------------------------------------------------------------------ collaborators
    @property
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            self._registry = ModelRegistry(self.config)
        return self._registry

    @property
    def alert_manager(self) -> EnhancedAlertManager:
        if self._alerts is None:
            from hybridtrader.monitoring.alerts import EnhancedAlertManager

            self._alerts = EnhancedAlertManager(self.config)
        return self._alerts

    def cost_model(self, bars: pl.DataFrame, sessions: pl.Series | None = None) -> CostModel:
        """Costs of the labels and the backtest: the slippage model (the one given, else
        `hybridtrader.SlippageModel` from the config with ADV and daily volatility learned from `bars` and
        spreads from their bid/ask columns when present), or `cost_bps` per side when it is switched off.
        Calibrating on the whole training range lets the costs of early trades see later volumes; costs
        are not what the model predicts, so this does not leak into the labels' direction. `sessions`:
        `session_of(bars["ts"])` when the caller holds it."""
        bt = self.config.ml_training.backtest
        if not bt.use_slippage_model:
            return FixedCost(bt.cost_bps)
        if self.slippage_model is not None:
            return SlippageCost(self.slippage_model, bt.notional)
        from hybridtrader.execution.slippage_model import SlippageModel

        model = SlippageModel(self.config)
        model.learn_from_daily_bars(session_closes(bars, sessions))
        if {"bid", "ask"} <= set(bars.columns):
            model.learn_from_quote_bars(bars)
        return SlippageCost(model, bt.notional)

    def _cost_model_for(self, bars: pl.DataFrame, dhash: str, sessions: pl.Series) -> CostModel:
        """`cost_model(bars)`, reused for the next training on the same bars (same content hash) and the
        same configuration: calibrating reads every bar."""
        key = (dhash, orjson.dumps(self.config.model_dump(mode="json")))
        if self._costs is None or self._costs[0] != key:
            self._costs = (key, self.cost_model(bars, sessions))
        return self._costs[1]

    def _shared_features(self, names: list[str]) -> list[str]:
        """Every ML-enabled strategy's features and label rule feature in config order (the same list,
        hence the same store key, whichever strategy asks), with `names` among them."""
        out: list[str] = []
        for name, cfg in self.config.strategies.items():
            if cfg.ml_model.enabled:
                try:
                    rule = [rule_feature(self._label_config(name))]
                except ValueError:  # no label kind: that strategy cannot train, its labels need nothing
                    rule = []
                out += [*cfg.ml_model.features, *rule]
        return list(dict.fromkeys([*out, *names]))  # first appearances, in order

    # --------------------------------------------------------------------------------- retraining
    def should_retrain(self, strategy: str, model_age_days: float | None = None) -> bool:
        """True when the model is at least one `training_schedule` period old (age from the registry's
        champion when not given; no champion, or no registry, means retrain) or a drift alert fired for
        the strategy."""
        if model_age_days is not None and model_age_days < 0:
            raise DataError(f"model_age_days must be >= 0, got {model_age_days}")
        if self.alert_manager.drift_detected(strategy):
            return True
        age = model_age_days
        if age is None and self.config.ml_training.model_registry.enabled:
            age = self.registry.champion_age_days(strategy)
        return age is None or age >= SCHEDULE_DAYS[self.config.ml_training.training_schedule]

    # ----------------------------------------------------------------------------------- training
    def _label_config(self, strategy: str) -> MeanReversionLabelConfig | TripleBarrierLabelConfig:
        cfg = self.config.ml_training.labels
        kind = self.config.strategies[strategy].ml_model.label or DEFAULT_LABELS.get(strategy)
        if kind == "mean_reversion":
            return cfg.mean_reversion
        if kind == "triple_barrier":
            return cfg.triple_barrier
        raise DataError(
            f"strategy {strategy!r}: no label kind; set strategies.{strategy}.ml_model.label "
            "to 'mean_reversion' or 'triple_barrier'"
        )

    def _labels(self, prep: Prepared) -> tuple[pl.DataFrame, int]:
        cfg = self._label_config(prep.strategy)
        args = (prep.sorted, cfg, prep.costs, prep.pnl_price, prep.shared)
        if isinstance(cfg, MeanReversionLabelConfig):
            return mean_reversion_labels(*args, prep.intraday, prep.sessions), cfg.horizon_bars
        return triple_barrier_labels(*args), cfg.horizon_bars

    def _splits(self, t0: np.ndarray, t1: np.ndarray, times: np.ndarray) -> list[Split]:
        ml = self.config.ml_training
        if ml.validation_method == "purged_kfold":
            return purged_kfold_splits(t0, t1, ml.validation.purged_kfold, times)
        return walk_forward_splits(t0, t1, ml.validation.walk_forward, times)

    def _settings(self, params: dict[str, float | int], model_type: ModelType, threads: int) -> FitSettings:
        m = self.config.ml_training.model
        return FitSettings(
            model_type=model_type,
            params=dict(params),
            num_boost_round=m.num_boost_round,
            early_stopping_rounds=m.early_stopping_rounds,
            learning_rate=m.learning_rate,
            n_threads=threads,
            seed=m.seed,
        )

    def train_strategy_model(
        self,
        strategy: str,
        historical_data: pl.DataFrame | dict[str, pl.DataFrame],
        progress: Progress | None = None,
        permutation_runs: int | None = None,
    ) -> TrainingResult:
        """Train, validate and gate a model for `strategy` on bars (one frame with a symbol column, or a
        mapping symbol -> bars); register it (champion only if every gate passes). The stages: prepare,
        label, folds, select (model against the unfiltered rule), the permutation control
        (`permutation_runs` retrainings on shuffled labels; None: `ml_training.controls.permutation_runs`),
        final fit, register (the rule-only candidate too when the rule is profitable and the model is not
        promoted)."""
        return self.train_strategy_models([strategy], historical_data, progress, permutation_runs)[0]

    def train_strategy_models(
        self,
        strategies: list[str],
        historical_data: pl.DataFrame | dict[str, pl.DataFrame],
        progress: Progress | None = None,
        permutation_runs: int | None = None,
    ) -> list[TrainingResult]:
        """`train_strategy_model` for each of `strategies` in turn on the same bars (what they share is read
        once). A finished strategy's MLflow registration runs in a background thread while the next
        strategy trains: each strategy's runs are its own experiment, and the next training waits for it
        before it reads the registry. Returns when every registration is done; a failed one raises here."""
        results: list[TrainingResult] = []
        with ThreadPoolExecutor(1, thread_name_prefix="ml-registry") as registrar:
            try:
                if self.config.ml_training.model_registry.enabled:
                    self._pending = registrar.submit(self.registry.warm_up)  # settled like a registration
                for name in strategies:
                    results.append(self._train(name, historical_data, progress, permutation_runs, registrar))
            finally:
                self.feature_store.flush()  # the feature file written in the background is complete
                self._settle()
        return results

    def _settle(self) -> None:
        """Wait for the registration running in the background, if any (its error is raised here)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _train(
        self,
        strategy: str,
        historical_data: pl.DataFrame | dict[str, pl.DataFrame],
        progress: Progress | None,
        permutation_runs: int | None,
        registrar: ThreadPoolExecutor,
    ) -> TrainingResult:
        started = time.perf_counter()
        report = progress or (lambda stage, done, total: None)
        prep = self._prepare(strategy, historical_data, report)
        report("labels", 0, 1)
        samples = self._label(prep)
        report("labels", 1, 1)
        ml = self.config.ml_training
        if samples.events.height < MIN_SAMPLES:
            # Too little history for the features' windows and the labels: nothing can be validated, so
            # the answer is a rejection (every gate at zero), not a model.
            reason = (
                f"only {samples.events.height} labelled samples with complete features (need {MIN_SAMPLES})"
            )
            log.warning("%s: %s; rejected without training", strategy, reason)
            return not_trained(strategy, reason, prep.names, ml.gates)
        base_rate = float(samples.y.mean())
        thresholds = [t for t in ml.backtest.thresholds if t > base_rate]
        if not thresholds:
            reason = (
                f"every threshold of ml_training.backtest.thresholds is at or below the labels' base rate "
                f"{base_rate:.3f}: the model could not change a decision; add higher thresholds"
            )
            log.warning("%s: %s; rejected without training", strategy, reason)
            return not_trained(strategy, reason, prep.names, ml.gates)
        folds = self._folds(prep, samples, report)
        book = self._book(prep, samples, folds, thresholds)
        sel = self._select(prep, samples, folds, book)
        runs = ml.controls.permutation_runs if permutation_runs is None else permutation_runs
        if runs < 0:
            raise DataError(f"permutation_runs must be >= 0, got {runs}")
        if runs or ml.gates.max_permutation_p is not None:
            self._permutation_control(prep, samples, folds, book, sel, runs, report)
        report("final model", 0, 1)
        final = self._final_fit(prep, samples, sel.best.param_set)
        report("final model", 1, 1)
        b = sel.best.result
        fit_seconds = sum(r.fit_seconds for r in folds.results) + final.fit_seconds
        metrics = {
            **sel.metrics,
            "fit_seconds": fit_seconds,
            "predict_seconds": sum(r.predict_seconds for r in folds.results),
        }
        promoted = all_passed(sel.gates)
        rule = RuleCandidate(
            gates=sel.rule_gates,
            metrics=sel.rule_metrics,
            equity=sel.rule.equity,
            offered=not promoted and sel.rule.sharpe > 0.0,
        )
        result = TrainingResult(
            strategy=strategy,
            promoted=promoted,
            gates=sel.gates,
            metrics=metrics,
            features=prep.names,
            best=BestTrial(sel.best.index, ml.model.param_grid[sel.best.param_set], sel.best.threshold),
            trials=[
                {"param_set": t.param_set, "threshold": t.threshold, **t.result.metrics()} for t in sel.trials
            ],
            folds=sel.folds,
            feature_hash=feature_hash(prep.names),
            feature_importance=dict(zip(prep.names, (float(v) for v in final.importance), strict=True)),
            equity=b.equity,
            validation_method=ml.validation_method,
            costs=describe(prep.costs),
            market_neutral=prep.neutral,
            model=final.model,
            rule=rule,
            data_start=str(prep.bars["ts"].min()),
            data_end=str(prep.bars["ts"].max()),
            n_symbols=prep.n_symbols,
            fold_dates=fold_dates(folds.splits, samples.t0, samples.t1),
        )
        # The registry's writes overlap the next strategy's training; `_settle` waits for them.
        self._pending = registrar.submit(self._finish, prep, samples, sel, result, started, report)
        return result

    def _finish(
        self,
        prep: Prepared,
        samples: Samples,
        sel: Selection,
        result: TrainingResult,
        started: float,
        report: Progress,
    ) -> None:
        """Stage 6: register (when the registry is on), then the training's total time and its log line."""
        ml = self.config.ml_training
        metrics, b, rule = result.metrics, sel.best.result, result.rule
        assert rule is not None
        if ml.model_registry.enabled:
            report("registry", 0, 1)
            self._register(prep, samples, sel, result)
            if rule.offered:
                self._register_rule(prep, result)
            report("registry", 1, 1)
        total = time.perf_counter() - started
        fit_seconds = metrics["fit_seconds"]
        metrics["total_seconds"] = total
        metrics["overhead_share"] = max(0.0, 1.0 - fit_seconds / total) if total > 0 else 0.0
        log.info(
            "%s: promoted=%s sharpe=%.2f (rule %.2f, confidence %.3f) auc=%.3f [%.3f, %.3f] dsr=%.3f "
            "trials=%d",
            result.strategy,
            result.promoted,
            b.sharpe,
            sel.rule.sharpe,
            metrics["rule_gain_confidence"],
            metrics["auc"],
            metrics["auc_low"],
            metrics["auc_high"],
            metrics["deflated_sharpe"],
            metrics["n_trials"],
        )

    # ------------------------------------------------------------------------- stage 1: prepare
    def _prepare(
        self, strategy: str, historical_data: pl.DataFrame | dict[str, pl.DataFrame], report: Progress
    ) -> Prepared:
        if isinstance(historical_data, dict):
            historical_data = pl.concat(
                [f.with_columns(symbol=pl.lit(sym)) for sym, f in historical_data.items()],
                how="diagonal_relaxed",
            )
        ml = self.config.ml_training
        if strategy not in self.config.strategies:
            raise DataError(
                f"strategy {strategy!r} is not configured (have {sorted(self.config.strategies)})"
            )
        mcfg = self.config.strategies[strategy].ml_model
        if not ml.enabled or not mcfg.enabled:
            raise ConfigError(f"{strategy}: ML training is disabled (ml_training / ml_model .enabled)")
        names = list(mcfg.features)
        if not names:
            raise DataError(f"strategies.{strategy}.ml_model.features is empty")
        if self._input is None or self._input[0] is not historical_data:
            self._input = (historical_data, InputBars.of(historical_data))
        given = self._input[1]
        bars, dhash = given.bars, given.dhash
        with ThreadPoolExecutor(1, thread_name_prefix="ml-costs") as side:
            # The costs' calibration (Polars and the slippage model's batch code, mostly outside the GIL)
            # beside the features, whose Polars passes keep about one core busy.
            calibrated = side.submit(self._cost_model_for, bars, dhash, given.sessions)
            report("features", 0, 1)
            # One feature frame serves every strategy on these bars: the next one reuses it, not recomputes.
            shared = self.feature_store.get(given.sorted, self._shared_features(names), dhash)
            report("features", 1, 1)
        costs = calibrated.result()
        n_symbols = given.n_symbols
        label_kind = mcfg.label or DEFAULT_LABELS.get(strategy)
        wanted = mcfg.market_neutral if mcfg.market_neutral is not None else label_kind == "triple_barrier"
        neutral = wanted and n_symbols > 1
        pnl_price = "pnl_close" if neutral else "close"
        if neutral:
            bars = basket_relative(bars, pnl_price, given.slots)
        return Prepared(
            strategy, names, given.sorted.with_bars(bars), shared, dhash, costs, n_symbols, neutral,
            pnl_price, given.intraday, given.times, given.sessions, given.slots,
        )  # fmt: skip

    # --------------------------------------------------------------------------- stage 2: label
    def _label(self, prep: Prepared) -> Samples:
        events, horizon = self._labels(prep)
        names = prep.names
        # The feature frame's rows are the bars' rows ((symbol, ts) order), so an event's features are
        # its bar's row: a gather, not a join on (symbol, ts).
        if not prep.shared["ts"].equals(prep.bars["ts"]):
            raise DataError("features: the feature frame's rows are not the bars' rows")
        feats = prep.shared.select(names)[events["bar"].to_numpy()]
        # (t0, symbol) order: the events come in bar order, which is (symbol, ts) order, so a stable sort by
        # t0 alone gives it (a one-key sort: a two-key sort encodes rows first, about twice the time).
        samples = pl.concat([events, feats], how="horizontal").drop_nulls(names)
        if samples.height > 1 and not (np.diff(samples["bar"].to_numpy()) > 0).all():
            raise DataError("labels: events are not in bar order")
        samples = samples.sort("t0", maintain_order=True)
        return Samples(
            events=samples,
            horizon=horizon,
            x=samples.select(names).to_numpy().astype(np.float64),
            y=samples["label"].to_numpy().astype(np.int32),
            t0=epoch_ns(samples["t0"]),
            t1=epoch_ns(samples["t1"]),
            times=prep.times,
        )

    # --------------------------------------------------------------------------- stage 3: folds
    def _threads(self) -> int:
        """LightGBM threads per fold task: a parallel backend divides the cores among its workers."""
        compute = self.config.compute
        n_jobs = self.config.ml_training.model.n_jobs or machine_threads()
        if compute.backend == "sequential":
            return n_jobs
        return max(1, n_jobs // (compute.workers or machine_threads()))

    def _fold_tasks(self, prep: Prepared, s: Samples, splits: list[Split]) -> dict[str, FoldTask]:
        """Every parameter set x fold as an independent task: sample indices into the shared (x, y)."""
        ml = self.config.ml_training
        model_type = self.config.strategies[prep.strategy].ml_model.model_type
        threads = self._threads()
        fraction = ml.validation.inner_validation_fraction
        inner = [inner_split(split.train, s.t0, s.t1, fraction) for split in splits]  # shared by every set
        tasks = {}
        for p, params in enumerate(ml.model.param_grid):
            settings = self._settings(params, model_type, threads)
            for f, split in enumerate(splits):
                tasks[f"trial={p},fold={f}"] = FoldTask(
                    f, p, settings, prep.names, inner[f].train, inner[f].test, split.test
                )
        return tasks

    def _run_folds(
        self,
        tasks: dict[str, FoldTask],
        s: Samples,
        y: np.ndarray,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[FoldResult]:
        ml = self.config.ml_training
        return run_folds(tasks, FoldData(s.x, y), self.config.compute, ml.model.seed, progress)

    def _folds(self, prep: Prepared, s: Samples, report: Progress) -> FoldOutput:
        ml = self.config.ml_training
        splits = self._splits(s.t0, s.t1, s.times)
        results = self._run_folds(self._fold_tasks(prep, s, splits), s, s.y, partial(report, "folds"))
        return oos_predictions(splits, results, len(ml.model.param_grid), len(s.y))

    # -------------------------------------------------------------------------- stage 4: select
    def _book(self, prep: Prepared, s: Samples, folds: FoldOutput, thresholds: list[float]) -> OosBook:
        periods = self._periods_of(prep)
        rows = folds.oos_rows
        events = s.events[rows]
        first = periods.index(events["t0"]).to_numpy()
        last = periods.index(events["t1"]).to_numpy()
        return OosBook(
            rows=rows,
            events=events,
            periods=periods,
            span=(int(first.min()), int(last.max())),
            marks=Marks.of(events, periods),
            weight=1.0 / (prep.n_symbols * s.horizon),
            thresholds=thresholds,
            holding_periods=int((last - first).max()) + 1,
        )

    def _periods_of(self, prep: Prepared) -> Periods:
        """The P&L periods of the bars marked by the strategy's P&L price. Made once per input bars and
        period settings: the next strategy on the same bars (the same normalised rows) marks them with its
        own price."""
        bt = self.config.ml_training.backtest
        key = (prep.dhash, bt.period_minutes if prep.intraday else None, bt.sessions_per_year)
        if self._periods is not None and self._periods[0] == key:
            return self._periods[1].marked_by(prep.bars[prep.pnl_price])
        distinct = pl.Series("ts", prep.times).cast(prep.bars.schema["ts"])
        periods = Periods.from_bars(prep.bars, key[1], key[2], prep.pnl_price, distinct, prep.slots)
        self._periods = (key, periods)
        return periods

    def _block_periods(self, book: OosBook) -> float:
        """Mean block of the stationary bootstrap: configured, else long enough to hold the longest trade
        and at least n^(1/3) (the usual rate for the block length)."""
        configured = self.config.ml_training.controls.block_periods
        n = book.span[1] - book.span[0] + 1
        return configured or float(max(math.ceil(n ** (1 / 3)), book.holding_periods))

    def _select(self, prep: Prepared, s: Samples, folds: FoldOutput, book: OosBook) -> Selection:
        ml = self.config.ml_training
        controls = ml.controls
        trials = book.trials(folds.probs)
        best = best_trial(trials)
        rule = book.rule()
        b = best.result

        # ---- deflated Sharpe with honest trial counting: the model's, every threshold x parameter set
        # tried and every earlier one on the same bars; the rule's, every earlier rule trial on them
        current = [t.result.sharpe_per_period for t in trials]
        self._settle()  # the previous strategy's registration is complete before the registry is read
        earlier = (
            self.registry.prior_trials(prep.strategy, prep.dhash, TRIAL_TAG, RULE_TAG)
            if ml.model_registry.enabled
            else {}
        )
        prior, prior_rule = earlier.get(TRIAL_TAG, []), earlier.get(RULE_TAG, [])
        n_trials, var_sr = trial_count(current + prior)
        n_rule, var_rule = trial_count([rule.sharpe_per_period, *prior_rule])

        def dsr(r: EvaluationResult, n: int, var: float) -> float:
            return deflated_sharpe_ratio(r.sharpe_per_period, r.n_periods, r.skew, r.kurtosis, n, var, True)

        model_dsr, rule_dsr = dsr(b, n_trials, var_sr), dsr(rule, n_rule, var_rule)
        # ---- does the model add to the rule? Paired bootstrap on the same periods, and discrimination.
        gain = sharpe_difference(
            b.equity["ret"].to_numpy(),
            rule.equity["ret"].to_numpy(),
            self._block_periods(book),
            controls.bootstrap_samples,
            controls.seed,
        )
        oos_prob = folds.probs[best.param_set, book.rows]
        disc = auc_interval(s.y[book.rows], oos_prob, ml.gates.auc_confidence)
        gates = evaluate_gates(b, model_dsr, ml.gates) + model_gates(disc.low, gain.confidence, ml.gates)
        rule_gates = evaluate_gates(rule, rule_dsr, ml.gates)

        # ---- per-fold metrics of the chosen trial
        fold_metrics = []
        by_fold = {(r.fold, r.trial): r for r in folds.results}
        first_period = book.periods.index(s.events["t0"]).to_numpy()
        last_period = book.periods.index(s.events["t1"]).to_numpy()
        for f, split in enumerate(folds.splits):
            rows = split.test[folds.tested[split.test] == f]
            if len(rows) == 0:
                continue
            fr = by_fold[(f, best.param_set)]
            fold_marks = book.marks.subset(np.searchsorted(book.rows, rows), len(book.rows))
            prob = folds.probs[best.param_set, rows]
            span = int(first_period[rows].min()), int(last_period[rows].max())
            res = evaluate_events(
                s.events[rows], prob, best.threshold, book.weight, book.periods, span, fold_marks
            )
            fold_metrics.append(
                {
                    **res.metrics(),
                    "auc": auc(s.y[rows], prob),
                    "n_train": float(len(split.train)),
                    "n_test": float(len(rows)),
                    "best_iteration": float(fr.best_iteration),
                }
            )
        sr0 = expected_max_sharpe(n_trials, var_sr)
        annual = math.sqrt(book.periods.per_year)
        metrics: dict[str, float] = {
            **b.metrics(),
            "deflated_sharpe": model_dsr,
            "expected_max_sharpe": sr0,
            # MinTRL (standard formula): periods this Sharpe needs to beat SR0 at the gate confidence
            "min_track_record_periods": min_track_record_length(
                b.sharpe_per_period, sr0, b.skew, b.kurtosis, alpha=1.0 - ml.gates.min_deflated_sharpe
            ),
            "n_trials": float(n_trials),
            "n_prior_trials": float(len(prior)),
            "trial_sharpe_variance": var_sr,
            "n_thresholds_tried": float(len(book.thresholds)),
            "auc": disc.auc,
            "auc_se": disc.se,
            "auc_low": disc.low,
            "auc_high": disc.high,
            "auc_confidence": ml.gates.auc_confidence,
            "rule_sharpe": rule.sharpe,
            "rule_n_trades": float(rule.n_trades),
            "sharpe_gain": gain.difference * annual,  # annualised Sharpe of the model minus the rule's
            "sharpe_gain_low": gain.low * annual,
            "sharpe_gain_high": gain.high * annual,
            "rule_gain_confidence": gain.confidence,
            "bootstrap_block_periods": gain.block,
            "n_samples": float(len(s.y)),
            "n_oos_samples": float(len(book.rows)),
            "positive_rate": float(s.y.mean()),
            "n_folds": float(len(folds.splits)),
        }
        rule_metrics = {**rule.metrics(), "deflated_sharpe": rule_dsr, "n_trials": float(n_rule)}
        return Selection(
            trials, best, rule, current, gates, rule_gates, metrics, rule_metrics, fold_metrics, book.periods
        )

    # --------------------------------------------------------------- stage 4b: permutation control
    def _permutation_control(
        self,
        prep: Prepared,
        s: Samples,
        folds: FoldOutput,
        book: OosBook,
        sel: Selection,
        runs: int,
        report: Progress,
    ) -> None:
        """Retrain `runs` times on labels shuffled within each validation block (the samples first tested
        by one fold, and the never-tested start): every block keeps its class balance, so every training
        and test fold keeps its own, while features and labels are decoupled. Each run selects its best
        trial exactly as the real run does and is scored on the real out-of-sample P&L; the statistic is
        the per-period Sharpe of the selected trial minus the rule's. Adds the p-value (and its gate when
        configured) to `sel`."""
        ml = self.config.ml_training
        rng = np.random.default_rng(np.random.SeedSequence([ml.controls.seed, 1]))
        real = sel.best.result.sharpe_per_period - sel.rule.sharpe_per_period
        null, null_auc = [], []
        started = time.perf_counter()
        report("permutations", 0, runs)
        tasks = self._fold_tasks(prep, s, folds.splits)  # the same folds and seeds, shuffled labels
        for k in range(runs):
            y = shuffle_within(s.y, folds.tested, rng)
            out = oos_predictions(folds.splits, self._run_folds(tasks, s, y), folds.probs.shape[0], len(y))
            best = best_trial(book.trials(out.probs))
            null.append(best.result.sharpe_per_period - sel.rule.sharpe_per_period)
            null_auc.append(auc(s.y[book.rows], out.probs[best.param_set, book.rows]))
            report("permutations", k + 1, runs)
        elapsed = time.perf_counter() - started
        p = permutation_p_value(real, np.array(null)) if runs else 1.0
        annual = math.sqrt(book.periods.per_year)
        sel.metrics.update(
            permutation_runs=float(runs),
            permutation_p=p,
            permutation_null_gain_mean=float(np.mean(null)) * annual if runs else math.nan,
            permutation_null_gain_max=float(np.max(null)) * annual if runs else math.nan,
            permutation_null_auc_mean=float(np.mean(null_auc)) if runs else math.nan,
            permutation_seconds_per_run=elapsed / runs if runs else 0.0,
        )
        if ml.gates.max_permutation_p is not None:
            sel.gates.append(permutation_gate(p, ml.gates.max_permutation_p))

    # ----------------------------------------------------------------------- stage 5: final fit
    def _final_fit(self, prep: Prepared, s: Samples, param_set: int) -> Fitted:
        """The chosen parameter set on every sample (early stopping on its own latest, purged part)."""
        ml = self.config.ml_training
        model_type = self.config.strategies[prep.strategy].ml_model.model_type
        n_jobs = ml.model.n_jobs or machine_threads()
        inner = inner_split(np.arange(len(s.y)), s.t0, s.t1, ml.validation.inner_validation_fraction)
        settings = self._settings(ml.model.param_grid[param_set], model_type, n_jobs)
        return fit(settings, prep.names, s.x[inner.train], s.y[inner.train], s.x[inner.test], s.y[inner.test])

    # ------------------------------------------------------------------------- stage 6: register
    def _register(self, prep: Prepared, s: Samples, sel: Selection, result: TrainingResult) -> None:
        """Log the run to MLflow and register the model (champion when promoted); fills in `result`'s
        registry fields."""
        ml = self.config.ml_training
        mcfg = self.config.strategies[prep.strategy].ml_model
        best_params = ml.model.param_grid[sel.best.param_set]
        gate_dicts = [g.as_dict() for g in sel.gates]
        bars, names, strategy = prep.bars, prep.names, prep.strategy
        reg = self.registry.log(
            RunRecord(
                strategy=strategy,
                params={
                    "model_type": mcfg.model_type,
                    "features": ",".join(names),
                    "validation_method": ml.validation_method,
                    "validation": orjson.dumps(ml.validation.model_dump()).decode(),
                    "labels": orjson.dumps(ml.labels.model_dump()).decode(),
                    "best_params": orjson.dumps(best_params).decode(),
                    "threshold": str(sel.best.threshold),
                    "backtest": orjson.dumps(ml.backtest.model_dump()).decode(),
                    "periods_per_year": f"{sel.periods.per_year:.1f}",
                    "costs": result.costs,
                    "market_neutral": str(prep.neutral).lower(),
                    "num_boost_round": str(ml.model.num_boost_round),
                    "learning_rate": str(ml.model.learning_rate),
                },
                tags={
                    "strategy": strategy,
                    "data_start": str(bars["ts"].min()),
                    "data_end": str(bars["ts"].max()),
                    "data_start_ns": str(int(s.times[0])),
                    "data_end_ns": str(int(s.times[-1])),
                    "data_hash": prep.dhash,
                    "n_symbols": str(prep.n_symbols),
                    "feature_hash": result.feature_hash,
                    "code_version": code_version(),
                    "promoted": str(result.promoted).lower(),
                    "candidate": "model",
                    TRIAL_TAG: orjson.dumps(sel.current_sharpes).decode(),
                    RULE_TAG: orjson.dumps([sel.rule.sharpe_per_period]).decode(),
                },
                metrics={k: v for k, v in result.metrics.items() if np.isfinite(v)},
                fold_metrics=result.folds,
                artifacts={
                    "gates.json": orjson.dumps(gate_dicts, option=orjson.OPT_INDENT_2),
                    "trials.json": orjson.dumps(result.trials, option=orjson.OPT_INDENT_2),
                    "feature_importance.svg": importance_svg(
                        names, list(result.feature_importance.values()), f"{strategy}: feature importance"
                    ),
                    "oos_equity.svg": equity_svg(result.equity, f"{strategy}: out-of-sample equity"),
                },
                model=result.model,
                model_type=mcfg.model_type,
                feature_names=names,
            ),
            result.promoted,
        )
        result.model_id, result.version, result.run_id, result.alias = (
            reg.model_id, reg.version, reg.run_id, reg.alias
        )  # fmt: skip

    def _register_rule(self, prep: Prepared, result: TrainingResult) -> None:
        """Register the rule alone as its own candidate (`<strategy>-rule-only`, tag candidate=rule_only),
        champion only when it passes the performance gates. Its trial is recorded on the model's run
        (tag `rule_sharpes`), so this run records none."""
        rule = result.rule
        assert rule is not None
        ml = self.config.ml_training
        label_kind = self.config.strategies[prep.strategy].ml_model.label or DEFAULT_LABELS[prep.strategy]
        spec = {
            "strategy": prep.strategy,
            "label": label_kind,
            "labels": ml.labels.model_dump(),
            "rule": "take every event of the entry rule; no model filter",
            "costs": result.costs,
            "market_neutral": prep.neutral,
        }
        gate_dicts = [g.as_dict() for g in rule.gates]
        reg = self.registry.log(
            RunRecord(
                strategy=prep.strategy,
                params={
                    "label": label_kind,
                    "costs": result.costs,
                    "market_neutral": str(prep.neutral).lower(),
                },
                tags={
                    "strategy": prep.strategy,
                    "candidate": "rule_only",
                    "data_hash": prep.dhash,
                    "data_start": result.data_start,
                    "data_end": result.data_end,
                    "code_version": code_version(),
                    "promoted": str(rule.promoted).lower(),
                    "model_run_id": result.run_id or "",
                },
                metrics={k: v for k, v in rule.metrics.items() if np.isfinite(v)},
                fold_metrics=[],
                artifacts={
                    "rule.json": orjson.dumps(spec, option=orjson.OPT_INDENT_2),
                    "gates.json": orjson.dumps(gate_dicts, option=orjson.OPT_INDENT_2),
                    "oos_equity.svg": equity_svg(rule.equity, f"{prep.strategy}: rule only, out-of-sample"),
                },
                model=None,
                model_type="rule",
                feature_names=[],
                registered_name=prep.strategy + RULE_ONLY_SUFFIX,
            ),
            rule.promoted,
        )
        rule.model_id, rule.version, rule.alias = reg.model_id, reg.version, reg.alias


RULE_ONLY_SUFFIX = "-rule-only"
TRIAL_TAG = "trial_sharpes"  # run tag: the per-period Sharpe of every (parameter set, threshold) trial
RULE_TAG = "rule_sharpes"  # run tag: the unfiltered rule's per-period Sharpe (its own trial count)


def trial_count(sharpes: list[float]) -> tuple[int, float]:
    """(N, V): the number of trials and the variance of their per-period Sharpe ratios (0 for one)."""
    n = len(sharpes)
    return n, float(np.var(sharpes, ddof=1)) if n > 1 else 0.0


def shuffle_within(y: np.ndarray, block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`y` with its values permuted at random inside each group of equal `block`."""
    out = y.copy()
    for b in np.unique(block):
        rows = np.flatnonzero(block == b)
        out[rows] = y[rng.permutation(rows)]
    return out


def fold_dates(splits: list[Split], t0: np.ndarray, t1: np.ndarray) -> list[dict[str, str]]:
    """Each fold's training and test date ranges (first label start, last label end; UTC)."""

    def day(ns: int) -> str:
        return str(np.datetime64(int(ns), "ns").astype("datetime64[m]")).replace("T", " ")

    return [
        {
            "train": f"{day(t0[sp.train].min())} .. {day(t1[sp.train].max())}",
            "test": f"{day(t0[sp.test].min())} .. {day(t1[sp.test].max())}",
        }
        for sp in splits
    ]


def oos_predictions(splits: list[Split], results: list[FoldResult], n_params: int, n: int) -> FoldOutput:
    """Collect fold results into per-parameter-set out-of-sample probabilities of the `n` samples (a sample
    tested by several folds keeps its first fold's prediction)."""
    tested = np.full(n, -1)
    for f, split in enumerate(splits):
        fresh = split.test[tested[split.test] < 0]
        tested[fresh] = f
    probs = np.full((n_params, n), np.nan)
    for r in results:
        rows = splits[r.fold].test
        keep = tested[rows] == r.fold
        probs[r.trial, rows[keep]] = r.prob[keep]
    return FoldOutput(splits, results, tested, probs)
