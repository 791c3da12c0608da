"""The live node's models: which version of its champion each strategy trades, since which bar time, and
the trainings that make new ones.

- Start of a run: each model-gated strategy (one with a `champion` attribute whose `ml_model` is enabled,
  with `live.use_models`) gets the registry's champion. With none and `live.train_missing_champions`, one
  is trained first on the 1-minute bars of the `live.history_sessions` sessions before the run (the
  node's small settings: `live.training_rounds`, `live.training_param_sets`); it trades only if the gates
  promote it. A champion older than `live.model_max_age_days` is refused: one alert, and the strategy
  trades its rules alone (no model) until a newer champion is swapped in.
- After a close: for the strategies `MLPipeline.should_retrain` names (training schedule, no champion,
  drift), one training runs in a separate process (multiprocessing "spawn": its own interpreter; the node
  keeps trading). When it ends, each newly promoted champion is swapped in at the next bar boundary.
- Every version change is written to the journal (key "models": [strategy, version or None, the close of
  the first bar time it trades]) before it takes effect, so a restarted node replaying its past swaps
  models at the same bar times and re-makes the same decisions.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from hybridtrader.config import Config
from hybridtrader.data.alpaca_client import AlpacaClient
from hybridtrader.engine.strategy import Strategy
from hybridtrader.errors import HybridTraderError, ModelError, first_line
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.live.journal import Journal
from hybridtrader.live.ops import NodeMetrics
from hybridtrader.market.calendar import session_bounds, sessions
from hybridtrader.market.timeconv import NS_PER_MINUTE, rfc3339, utc_ns
from hybridtrader.ml.registry import CHAMPION, ModelRegistry, tracking_uri
from hybridtrader.monitoring.alerts import EnhancedAlertManager
from hybridtrader.strategy.model import Champion

log = logging.getLogger(__name__)

Progress = Callable[[str, str, int, int], None]  # (strategy, stage, done, total)
Alert = Callable[[str, str, str, str], None]  # (kind, subject, severity, message)
MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class Trained:
    """One training's outcome: the promoted version (None when the gates rejected it) and why."""

    strategy: str
    version: str | None
    verdict: str


def training_config(config: Config) -> Config:
    """The config the node trains with: `ml_training` with the node's boosting rounds and grid size, and
    the learning rate raised so that rounds x learning rate (the total shrunken step) stays what
    `ml_training.model` gives (capped at 1): fewer rounds of the same small steps would leave every
    probability near the base rate, under every threshold."""
    cfg = config.model_copy(deep=True)
    model = cfg.ml_training.model
    rounds = config.live.training_rounds
    model.learning_rate = min(1.0, model.learning_rate * model.num_boost_round / rounds)
    model.num_boost_round = rounds
    model.param_grid = model.param_grid[: config.live.training_param_sets]
    return cfg


def sessions_ending(last: date, n: int) -> list[date]:
    """The `n` NYSE sessions up to and including `last` (a session), oldest first."""
    return sessions(last - timedelta(days=2 * n + 10), last)[-n:]  # >= n sessions in 2n + 10 days


def history(data: AlpacaClient, symbols: list[str], sessions: list[date]) -> pl.DataFrame:
    """The 1-minute bars of `symbols` over `sessions` (consecutive), from the data API."""
    first = utc_ns(session_bounds(sessions[0])[0])
    last = utc_ns(session_bounds(sessions[-1])[1]) - NS_PER_MINUTE  # the last bar's start
    return data.get_bars(symbols, "1Min", rfc3339(first), rfc3339(last))


def train(
    config: Config,
    strategies: list[str],
    bars: pl.DataFrame,
    progress: Progress | None = None,
    alerts: EnhancedAlertManager | None = None,
) -> list[Trained]:
    """Train, gate and register each strategy's model on `bars` with the node's settings."""
    from hybridtrader.ml.pipeline import MLPipeline

    pipeline = MLPipeline(training_config(config), alert_manager=alerts)
    out = []
    for name in strategies:
        report = None
        if progress is not None:
            report = lambda stage, done, total, name=name: progress(name, stage, done, total)  # noqa: E731
        try:
            result = pipeline.train_strategy_model(name, bars, progress=report)
        except HybridTraderError as e:  # bad or too little data: this strategy is not trained, says why
            out.append(Trained(name, None, f"training failed: {first_line(e)}"))
            continue
        out.append(Trained(name, result.version if result.promoted else None, result.verdict))
    return out


def _retrain_main(
    config: Config, data_url: str, symbols: list[str], sessions: list[date], strategies: list[str], conn: Any
) -> None:
    """The retraining process: history from the data API, train, send the outcomes (or the error)."""
    try:
        data = AlpacaClient(config, data_url=data_url, limiter=RateLimiter(config))
        conn.send(train(config, strategies, history(data, symbols, sessions)))
    except Exception as e:  # the parent reports it: one line, the node keeps trading
        conn.send(f"{type(e).__name__}: {e}")
    finally:
        conn.close()


class Retraining:
    """One retraining in a separate (spawned) process; `outcome()` is None while it runs."""

    def __init__(
        self, config: Config, data_url: str, symbols: list[str], sessions: list[date], strategies: list[str]
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe(duplex=False)
        self.strategies = strategies
        self.sessions = sessions
        self.started = time.monotonic()
        self.process = ctx.Process(
            target=_retrain_main,
            args=(config, data_url, symbols, sessions, strategies, child),
            name="hybridtrader-retrain",
        )
        self.process.start()
        child.close()

    def outcome(self) -> list[Trained] | None:
        """The outcomes once the process has sent them; ModelError when it failed or died silently."""
        if self._conn.poll():
            try:
                got = self._conn.recv()
            except EOFError:
                got = f"the process exited ({self.process.exitcode}) without an answer"
            self.process.join(5)
            if isinstance(got, str):
                raise ModelError(f"retraining {', '.join(self.strategies)}: {got}")
            return list(got)
        if not self.process.is_alive():
            raise ModelError(
                f"retraining {', '.join(self.strategies)}: the process exited ({self.process.exitcode}) "
                "without an answer"
            )
        return None

    def answered(self, timeout_s: float) -> bool:
        """Whether the process has answered or ended (waits up to `timeout_s`)."""
        return self._conn.poll(timeout_s) or not self.process.is_alive()

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(5)
        self._conn.close()


class LiveModels:
    """The champions of a node's model-gated strategies, their journal record and the retrainings."""

    def __init__(
        self, config: Config, journal: Journal, metrics: NodeMetrics, alert: Alert,
        alerts: EnhancedAlertManager,
    ) -> None:  # fmt: skip
        self.config, self.journal, self.metrics = config, journal, metrics
        self.alert, self.alerts = alert, alerts
        self.gated: dict[str, Strategy] = {}
        self.trading: dict[str, str | None] = {}  # strategy -> version it trades now (None: rules only)
        self._pending: list[tuple[str, str | None, int]] = []  # journaled swaps not yet applied (replay)
        self.retraining: Retraining | None = None
        self.lines: list[str] = []  # what was trained / promoted / refused, for the operator
        self._registry: ModelRegistry | None = None

    @property
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            self._registry = ModelRegistry(self.config)
        return self._registry

    def gates(self, strategy: Strategy) -> bool:
        """Whether `strategy` trades with a registry model (a `champion` attribute, ML enabled)."""
        spec = self.config.strategies.get(strategy.name)
        return (
            self.config.live.use_models
            and hasattr(strategy, "champion")
            and spec is not None
            and spec.ml_model.enabled
            and self.config.ml_training.model_registry.enabled
        )

    # --------------------------------------------------------------------------------- start
    def begin(
        self, strategies: list[Strategy], since_ns: int, train_on: Callable[[], pl.DataFrame],
        progress: Progress | None = None,
    ) -> None:  # fmt: skip
        """Give each model-gated strategy its model at the run's start: the journal's record on a restart
        (later swaps are applied by `apply_due` as the replay reaches them), else the registry's champion,
        trained first when there is none (`train_on()` gives the bars)."""
        self.gated = {s.name: s for s in strategies if self.gates(s)}
        recorded = self.journal.get("models")
        if recorded is not None:
            entries = sorted(((s, v, int(t)) for s, v, t in recorded), key=lambda e: e[2])
            first = {s: v for s, v, _ in reversed(entries)}  # the earliest entry of each strategy
            for name, version in first.items():
                if name in self.gated:
                    self._set(name, version)
            seen: set[str] = set()
            for s, v, t in entries:
                if s in seen:
                    self._pending.append((s, v, t))
                seen.add(s)
            return
        champions = {name: self._champion_version(name) for name in self.gated}
        missing = [n for n, v in champions.items() if v is None]
        if missing and self.config.live.train_missing_champions:
            bars = train_on()
            if bars.height == 0:
                for name in missing:
                    self.lines.append(
                        f"{name}: no champion, and no history before the run to train one on; rules only"
                    )
            for t in train(self.config, missing, bars, progress, self.alerts) if bars.height else []:
                champions[t.strategy] = t.version
                self.lines.append(f"{t.strategy}: trained before trading: {self._said(t)}")
        entries = []
        for name, version in champions.items():
            if version is None and not self.config.live.train_missing_champions:
                self.lines.append(f"{name}: no champion in the registry; rules only")
            elif version is not None and not self._fresh_enough(name, version):
                version = None
            self._set(name, version)
            entries.append((name, version, since_ns))
        self.journal.put("models", entries, since_ns)

    def _champion_version(self, name: str) -> str | None:
        uri = tracking_uri(self.config)
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
            return None  # no local store yet: no champion (and MLflow need not create one to say so)
        return self.registry.alias_version(name, CHAMPION)

    def _fresh_enough(self, name: str, version: str) -> bool:
        """False (with one alert) when the version is older than live.model_max_age_days."""
        created = self.registry.client.get_model_version(name, version).creation_timestamp
        age = (time.time() * 1000 - created) / MS_PER_DAY
        limit = self.config.live.model_max_age_days
        if age <= limit:
            return True
        message = (
            f"{name}: champion v{version} is {age:.1f} days old (> live.model_max_age_days {limit:g}); "
            "refused: the strategy trades its rules alone until a newer champion is promoted"
        )
        self.alert("model_expired", name, "critical", message)
        self.lines.append(message)
        return False

    @staticmethod
    def _said(t: Trained) -> str:
        return f"promoted v{t.version} (champion)" if t.version is not None else f"not promoted: {t.verdict}"

    def _set(self, name: str, version: str | None) -> None:
        """Make `name` trade `version` from the next batch on (None: rules only), and say so in the
        metrics."""
        strategy = self.gated[name]
        champion: Champion | None = None
        if version is not None:
            model, threshold = self.registry.load_version(name, version)
            features = list(self.config.strategies[name].ml_model.features)
            champion = Champion(name, version, model, threshold, features)
        old = self.trading.get(name, "")
        if old != "":
            self.metrics.model.labels(name, old or "rules").set(0)
        strategy.champion = champion  # type: ignore[attr-defined]
        self.trading[name] = version
        self.metrics.model.labels(name, version or "rules").set(1)
        self.metrics.model_version.labels(name).set(float(version) if version is not None else 0.0)

    # ----------------------------------------------------------------------------- bar times
    def apply_due(self, bar_close_ns: int, replaying: bool) -> None:
        """At a bar boundary, before the batch closing at `bar_close_ns` is traded: the journaled swaps
        due by then (replay), or the champions a finished retraining promoted (live: journaled, then
        applied)."""
        while self._pending and self._pending[0][2] <= bar_close_ns:
            name, version, _ = self._pending.pop(0)
            self._set(name, version)
        if replaying or self.retraining is None:
            return
        try:
            outcome = self.retraining.outcome()
        except ModelError as e:
            self.retraining.stop()
            self.retraining = None
            self.alert("retrain_failed", "models", "warning", str(e))
            return
        if outcome is None:
            return
        self.retraining.stop()
        self.retraining = None
        for t in outcome:
            if t.version is None or t.version == self.trading.get(t.strategy):
                kept = self.trading.get(t.strategy)
                self.lines.append(f"{t.strategy}: retrained: {self._said(t)}; keeps {_name(kept)}")
                self.journal.event("retrain", self.lines[-1], bar_close_ns)
                continue
            entries = [*self.journal.get("models", []), (t.strategy, t.version, bar_close_ns)]
            self.journal.put("models", entries, bar_close_ns)  # before the swap it records
            old = self.trading.get(t.strategy)
            self._set(t.strategy, t.version)
            self.lines.append(
                f"{t.strategy}: retrained, {_name(old)} -> v{t.version} from the bar closing "
                f"{rfc3339(bar_close_ns)}"
            )
            self.journal.event("model_swap", self.lines[-1], bar_close_ns)
            log.info("%s", self.lines[-1])

    # ------------------------------------------------------------------------------ sessions
    def after_close(self, session: date, symbols: list[str], data_url: str, now_ns: int) -> None:
        """Start one retraining of the strategies `should_retrain` names, on the history up to `session`."""
        if not (self.config.live.retrain and self.gated) or self.retraining is not None:
            return
        from hybridtrader.ml.pipeline import MLPipeline

        pipeline = MLPipeline(self.config, alert_manager=self.alerts)
        due = [n for n in self.gated if pipeline.should_retrain(n)]
        if not due:
            return
        days = sessions_ending(session, self.config.live.history_sessions)
        self.retraining = Retraining(self.config, data_url, symbols, days, due)
        message = (
            f"retraining {', '.join(due)} on {days[0]}..{days[-1]} in process {self.retraining.process.pid}"
        )
        self.lines.append(message)
        self.journal.event("retrain", message, now_ns)
        log.info("%s", message)

    def wait(self, timeout_s: float, beat: Callable[[], None], stop: threading.Event) -> None:
        """Hold (beating the heartbeat) until the running retraining has answered, `timeout_s` passed or a
        stop was asked."""
        deadline = time.monotonic() + timeout_s
        while self.retraining is not None and time.monotonic() < deadline and not stop.is_set():
            if self.retraining.answered(0.2):
                return
            beat()

    def close(self) -> None:
        if self.retraining is not None:
            log.info("retraining of %s stopped: the node is closing", ", ".join(self.retraining.strategies))
            self.retraining.stop()
            self.retraining = None


def _name(version: str | None) -> str:
    return "rules only" if version is None else f"v{version}"
