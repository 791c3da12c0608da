"""Configuration: one YAML file with ${VAR} / ${VAR:-default} substitution, validated into typed objects.

Every field has a default, so no file means all defaults (the embedded local setup). Unknown keys and bad
values are a `ConfigError` naming the key path, the value and what is allowed. Secrets are `SecretStr`
(masked in every repr); a secret whose environment variable is unset disables its provider with a warning.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from hybridtrader.errors import ConfigError
from hybridtrader.market.timeframe import parse_every

log = logging.getLogger(__name__)

ENV_PATH = "HYBRIDTRADER_CONFIG"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def merge_defaults(defaults: dict[str, Any], raw: Any) -> Any:
    """`raw` merged key by key into `defaults` (nested mappings recursively; lists and scalars replace).

    So a file that sets one key of a default entry keeps that entry's other keys and the other entries."""
    if not isinstance(raw, dict):
        return raw
    out = dict(defaults)
    for k, v in raw.items():
        d = out.get(k)
        out[k] = merge_defaults(d, v) if isinstance(d, dict) and isinstance(v, dict) else v
    return out


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# ----------------------------------------------------------------------------------------- ML
class ModelRegistryConfig(Section):
    enabled: bool = True
    backend: Literal["mlflow"] = "mlflow"
    tracking_uri: str | None = None  # None: a local SQLite store under data_dir
    # None: artifacts under data_dir (used only when the experiment is created).
    artifact_location: str | None = None
    experiment_prefix: str = "hybridtrader"


class PurgedKFoldConfig(Section):
    n_splits: int = Field(5, ge=2, le=50)
    # Embargo after each test block, as a share of the number of distinct bar times (López de Prado: ~1%).
    embargo_pct: float = Field(0.01, ge=0.0, lt=0.5)


class WalkForwardConfig(Section):
    # Shares of the distinct bar times: the first training window, each test block, and the step between
    # test blocks (None: the test block length, i.e. adjacent test blocks).
    train_fraction: float = Field(0.4, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    step_fraction: float | None = Field(None, gt=0.0, lt=1.0)
    window: Literal["expanding", "sliding"] = "expanding"

    @model_validator(mode="before")
    @classmethod
    def _no_embargo(cls, data: Any) -> Any:
        # An embargo drops training samples right after a test block (methods.md); walk-forward trains only
        # on samples whose labels end before its test block starts, so it would never drop anything.
        if isinstance(data, dict) and "embargo_pct" in data:
            raise ValueError(
                "embargo_pct: walk-forward trains only on the past, so there is nothing after a test block "
                "to embargo (labels reaching into the test block are purged); remove the key, or use "
                "validation_method 'purged_kfold' with purged_kfold.embargo_pct"
            )
        return data


class ValidationConfig(Section):
    purged_kfold: PurgedKFoldConfig = Field(default_factory=PurgedKFoldConfig)
    walk_forward: WalkForwardConfig = Field(default_factory=WalkForwardConfig)
    # Early stopping uses the last share of each training fold (purged), never the test block.
    inner_validation_fraction: float = Field(0.2, gt=0.0, lt=0.5)


class MeanReversionLabelConfig(Section):
    # Short-term reversal: the mean of the last `window` closes, a stretch of `entry_z` of their std.
    window: int = Field(5, ge=2)  # rolling mean / std of the close that defines "the mean"
    entry_z: float = Field(1.5, gt=0.0)  # an event is a bar whose |z-score| reaches this
    horizon_bars: int = Field(10, ge=1)  # the trade must revert within this many bars (same session)


class TripleBarrierLabelConfig(Section):
    vol_span: int = Field(100, ge=2)  # EWM span of the 1-bar log-return volatility (the barrier unit)
    profit_take: float = Field(1.0, gt=0.0)  # upper barrier, multiples of vol x sqrt(horizon)
    stop_loss: float = Field(1.0, gt=0.0)
    horizon_bars: int = Field(390, ge=1)  # vertical barrier (390 one-minute bars: one session)
    trend_window: int = Field(390, ge=4)  # trend_strength window that gives the side
    entry_strength: float = Field(0.5, ge=0.0)  # an event is a bar whose |trend_strength| reaches this
    # Events are taken on every n-th bar of a symbol: labels this long overlap almost completely, so
    # denser sampling adds rows, not information.
    event_spacing_bars: int = Field(30, ge=1)


class LabelsConfig(Section):
    mean_reversion: MeanReversionLabelConfig = Field(default_factory=MeanReversionLabelConfig)
    triple_barrier: TripleBarrierLabelConfig = Field(default_factory=TripleBarrierLabelConfig)


class BacktestSettings(Section):
    # Cost per side in basis points when no slippage model is used.
    cost_bps: float = Field(1.0, ge=0.0)
    use_slippage_model: bool = True  # use hybridtrader.SlippageModel when it is available
    notional: float = Field(10_000.0, gt=0.0)  # per trade, turns a trade into a quantity for costs
    # A trade is taken when the model's probability reaches the threshold; every threshold tried is a trial.
    # Thresholds at or below the labels' base rate are not tried (they would take nearly every event and
    # decide nothing the rule does not).
    thresholds: list[float] = Field(
        default_factory=lambda: [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85], min_length=1
    )
    # P&L is booked per period: `period_minutes` buckets with intraday bars, one session with daily bars.
    period_minutes: int = Field(60, ge=1, le=390)
    sessions_per_year: int = Field(252, gt=0)  # annualisation: sessions x periods per session

    @field_validator("thresholds")
    @classmethod
    def _thresholds_in_unit_interval(cls, v: list[float]) -> list[float]:
        bad = [t for t in v if not 0.0 < t < 1.0]
        if bad:
            raise ValueError(f"thresholds must lie in (0, 1), got {bad}")
        return v


class GatesConfig(Section):
    min_sharpe: float = 1.0  # annualised, out-of-sample, net of costs
    max_drawdown: float = Field(0.2, gt=0.0, le=1.0)  # share of equity
    min_trades: int = Field(50, ge=1)
    min_win_rate: float = Field(0.5, ge=0.0, le=1.0)
    # Deflated Sharpe ratio: probability that the true Sharpe beats the best of N trials under the null.
    min_deflated_sharpe: float = Field(0.95, gt=0.0, lt=1.0)
    # The model must beat the unfiltered rule (every event taken) on the same out-of-sample periods: the
    # share of paired stationary-bootstrap resamples in which its Sharpe is the higher one.
    min_rule_gain_confidence: float = Field(0.95, gt=0.0, lt=1.0)
    # The lower end of the two-sided DeLong interval of the out-of-sample AUC at this confidence must lie
    # above 0.5.
    auc_confidence: float = Field(0.95, gt=0.0, lt=1.0)
    # Permutation control as a gate: None, reported only; else its p-value must be at most this (reachable
    # with ml_training.controls.permutation_runs >= 1 / p - 1).
    max_permutation_p: float | None = Field(None, gt=0.0, lt=1.0)


class ControlsConfig(Section):
    # Retrainings on shuffled labels (shuffled within each validation block); 0: no permutation control.
    permutation_runs: int = Field(0, ge=0)
    bootstrap_samples: int = Field(2000, ge=100)  # resamples of the model-vs-rule Sharpe comparison
    # Mean block length of the stationary bootstrap in P&L periods; None: max(n^(1/3), the longest
    # out-of-sample holding in periods), so overlapping trades stay inside one block.
    block_periods: float | None = Field(None, ge=1.0)
    seed: int = 0  # bootstrap and label shuffles


class ModelTrainingConfig(Section):
    num_boost_round: int = Field(300, ge=1)
    early_stopping_rounds: int = Field(30, ge=1)
    learning_rate: float = Field(0.05, gt=0.0, le=1.0)
    # Each entry is one hyper-parameter set; every set x threshold is a trial counted by the deflated
    # Sharpe gate.
    param_grid: list[dict[str, float | int]] = Field(
        default_factory=lambda: [
            {"num_leaves": 15, "min_data_in_leaf": 200},
            {"num_leaves": 31, "min_data_in_leaf": 100, "feature_fraction": 0.8},
        ],
        min_length=1,
    )
    n_jobs: int | None = Field(None, ge=1)  # threads for the model; None: the machine's cores
    seed: int = 0


class MLTrainingConfig(Section):
    enabled: bool = True
    training_schedule: Literal["daily", "weekly", "monthly"] = "weekly"
    validation_method: Literal["walk_forward", "purged_kfold"] = "walk_forward"
    model_registry: ModelRegistryConfig = Field(default_factory=ModelRegistryConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    labels: LabelsConfig = Field(default_factory=LabelsConfig)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    model: ModelTrainingConfig = Field(default_factory=ModelTrainingConfig)
    controls: ControlsConfig = Field(default_factory=ControlsConfig)


class MLModelConfig(Section):
    enabled: bool = True
    model_type: Literal["lightgbm", "xgboost"] = "lightgbm"
    features: list[str] = Field(default_factory=list)
    # Which labels the strategy learns; None: taken from the strategy name (the two seed strategies).
    label: Literal["mean_reversion", "triple_barrier"] | None = None
    # Measure trade returns net of the equal-weighted basket of all symbols (a beta-one hedge) so that a
    # model is not promoted for holding the market's drift; needs two or more symbols. None: on for
    # triple-barrier (swing, held for sessions), off for mean-reversion labels (held for minutes, where
    # the market's drift is negligible and a basket hedge would strip market-level reversal).
    market_neutral: bool | None = None


class StrategyConfig(Section):
    enabled: bool = True
    ml_model: MLModelConfig = Field(default_factory=MLModelConfig)


def _default_strategies() -> dict[str, StrategyConfig]:
    return {k: StrategyConfig.model_validate(v) for k, v in _DEFAULT_STRATEGIES.items()}


_DEFAULT_STRATEGIES: dict[str, dict[str, Any]] = {
    "intraday_mean_reversion": {
        "ml_model": {"features": ["zscore", "rsi", "atr", "volume_zscore", "spread", "ret_1", "ret_5"]}
    },
    "swing_trend_following": {
        "ml_model": {
            "features": [
                "ema_slope", "adx", "atr", "volume_zscore", "trend_strength", "trend_strength_390", "ret_390",
            ]
        }
    },
}  # fmt: skip


# ------------------------------------------------------------------------------------ monitoring
class DriftConfig(Section):
    # Seed thresholds: a feature drifts when KS > 0.2 or PSI > 0.3.
    ks_threshold: float = Field(0.2, gt=0.0, le=1.0)
    psi_threshold: float = Field(0.3, gt=0.0)
    psi_bins: int = Field(10, ge=2, le=100)  # quantile bins of the reference (deciles)
    psi_epsilon: float = Field(1e-4, gt=0.0, lt=0.01)  # share used for an empty bin


class AlertsConfig(Section):
    cooldown_seconds: float = Field(900.0, ge=0.0)  # the same alert key is not re-sent within this time
    anomaly_z: float = Field(2.0, gt=0.0)  # performance anomaly past this many standard deviations
    log: bool = True
    jsonl_path: Path | None = None
    webhook_url: str | None = None
    webhook_timeout_seconds: float = Field(5.0, gt=0.0)


class MonitoringConfig(Section):
    drift: DriftConfig = Field(default_factory=DriftConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)


# ------------------------------------------------------------------------------- execution / risk
class SlippageConfig(Section):
    """`execution.slippage`: the slippage model (hybridtrader.SlippageModel)."""

    max_slippage_bps: float = Field(20.0, gt=0)
    # 0.6: Almgren et al. (2005); 0.5: the square-root law.
    impact_exponent: float = Field(0.6, gt=0, le=1)
    prior_impact_coef: float = Field(0.5, ge=0)
    prior_spread_bps: float = Field(5.0, gt=0)
    prior_adv_shares: float = Field(1_000_000.0, gt=0)
    prior_daily_vol_bps: float = Field(200.0, gt=0)
    # Forgetting rate of the impact regression per fill: memory of about 1 / learning_rate fills.
    learning_rate: float = Field(0.01, gt=0, le=1)
    prior_strength_fills: float = Field(5.0, gt=0)
    spread_learning_rate: float = Field(0.05, gt=0, le=1)
    bucket_minutes: int = Field(30, ge=1, le=390)
    daily_window: int = Field(20, ge=2)
    state_path: Path | None = None  # loaded at start when it exists; the default target of save()


class TimeSlicingConfig(Section):
    """`execution.time_slicing`: how a parent order is split when `enable_time_slicing` is on."""

    window_minutes: float = Field(30.0, gt=0)
    slices: int = Field(6, ge=1)
    max_participation: float = Field(0.05, gt=0, le=1)
    # Ratio of the volume density at the open and the close to the one at midday (U shape).
    volume_u_shape: float = Field(3.0, ge=1)


class ToxicTimeConfig(Section):
    """`execution.toxic_time`: windows without new entries when `enable_toxic_time_filtering` is on."""

    open_minutes: float = Field(15.0, ge=0)
    close_minutes: float = Field(10.0, ge=0)
    halt_buffer_minutes: float = Field(5.0, ge=0)


class BackoffConfig(Section):
    """Retries of rate-limited (HTTP 429) and, if enabled, transient failures (timeouts, connection, 5xx)."""

    base_seconds: float = Field(0.5, gt=0)  # first backoff ceiling; doubles per retry (full jitter below it)
    cap_seconds: float = Field(30.0, gt=0)  # ceiling of any single backoff
    max_retries: int = Field(5, ge=0)
    max_elapsed_seconds: float = Field(120.0, gt=0)  # give up rather than wait past this since the first try
    # Off by default: retrying a timed-out order submission could send it twice.
    retry_transient: bool = False


class FillsConfig(Section):
    """`execution.fills`: the fill simulator (hybridtrader.execution.fills) of the backtest and the venue.

    Fees default to Alpaca's schedule: no commission, and on sells the SEC Section 31 fee at $27.80 per
    million of notional (the rate in force 2024-05-22 to 2025-05-13; SEC Release 34-102779 set $0.00 from
    2025-05-14, so set 0 to model that period) and the FINRA Trading Activity Fee at $0.000166 per share,
    at most $8.30 per trade (FINRA By-Laws Schedule A, 2024 rate).
    """

    commission_per_share: float = Field(0.0, ge=0)  # USD per share
    commission_min: float = Field(0.0, ge=0)  # USD per order, charged over its fills
    sec_fee_rate: float = Field(27.8e-6, ge=0)  # USD per USD of sell notional
    taf_per_share: float = Field(0.000166, ge=0)  # USD per share sold
    taf_max_per_trade: float = Field(8.30, ge=0)  # USD per fill
    entry_latency_ms: float = Field(50.0, ge=0)  # submit/cancel/replace to the matching engine
    ack_latency_ms: float = Field(20.0, ge=0)  # submit to the broker's acknowledgement
    bar_participation: float = Field(0.1, gt=0, le=1)  # bars only: max share of a bar's volume per order
    impact: bool = True  # fills pay the slippage model's impact beyond the touch (when a model is given)
    seed: int = Field(0, ge=0)  # order ids the venue derives from client order ids


class ExecutionConfig(Section):
    max_api_calls_per_minute: int = Field(200, gt=0)
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    enable_time_slicing: bool = True
    enable_toxic_time_filtering: bool = True
    slippage: SlippageConfig = Field(default_factory=SlippageConfig)
    time_slicing: TimeSlicingConfig = Field(default_factory=TimeSlicingConfig)
    toxic_time: ToxicTimeConfig = Field(default_factory=ToxicTimeConfig)
    fills: FillsConfig = Field(default_factory=FillsConfig)


class BookCapsConfig(Section):
    """Caps of one exposure book; percentages are of account equity."""

    # Required for books other than intraday/swing, whose gross caps are the seed keys
    # risk.max_gross_exposure_pct_intraday / _swing (setting it here for those two is an error).
    max_gross_exposure_pct: float | None = Field(None, gt=0)
    max_net_exposure_pct: float = Field(35.0, gt=0)
    max_symbol_exposure_pct: float = Field(10.0, gt=0)
    max_sector_exposure_pct: float = Field(25.0, gt=0)
    max_order_notional: float = Field(100_000.0, gt=0)  # account currency, per order
    max_open_positions: int = Field(20, gt=0, le=4_294_967_295)


_DEFAULT_BOOKS: dict[str, dict[str, Any]] = {
    "intraday": {},
    "swing": {
        "max_net_exposure_pct": 80.0,
        "max_symbol_exposure_pct": 15.0,
        "max_sector_exposure_pct": 35.0,
        "max_order_notional": 250_000.0,
        "max_open_positions": 30,
    },
}


class ExposureConfig(Section):
    # Books given here are merged key by key over the defaults; intraday and swing always exist.
    books: dict[str, BookCapsConfig] = Field(
        default_factory=lambda: {k: BookCapsConfig(**v) for k, v in _DEFAULT_BOOKS.items()}
    )
    default_shortable: bool = True  # for symbols never marked with set_shortable
    flatten_minutes_before_close: float = Field(5.0, ge=0, le=390)

    @field_validator("books", mode="before")
    @classmethod
    def _merge_default_books(cls, raw: Any) -> Any:
        return merge_defaults(_DEFAULT_BOOKS, raw)


class CircuitBreakerConfig(Section):
    """Emergency flatten: daily loss vs session-start equity, drawdown vs peak equity (percent)."""

    max_daily_loss_pct: float = Field(3.0, gt=0, le=100)
    max_drawdown_pct: float = Field(10.0, gt=0, le=100)
    # Optional softer levels that move the manager to REDUCING first (None: off).
    reduce_daily_loss_pct: float | None = Field(2.0, gt=0, le=100)
    reduce_drawdown_pct: float | None = Field(None, gt=0, le=100)


def regime_key(name: str) -> str:
    """Canonical regime name: lower case, "_" for "-" and " " ("High Volatility" -> high_volatility)."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _default_regimes() -> dict[str, float]:
    return {"normal": 1.0, "trending": 1.0, "ranging": 0.75, "high_volatility": 0.5, "crisis": 0.25}


class SizingConfig(Section):
    """DynamicSizer: ATR risk sizing, regime multipliers, volatility targeting, fractional Kelly, caps."""

    risk_per_trade_pct: float = Field(1.0, gt=0, le=100)  # % of equity lost if the stop is hit
    atr_multiple: float = Field(2.0, gt=0)  # stop distance k x ATR
    max_position_pct: float = Field(20.0, gt=0)  # notional cap per position, % of equity
    regime_multipliers: dict[str, float] = Field(default_factory=_default_regimes)
    symbol_risk_multipliers: dict[str, float] = Field(default_factory=dict)  # e.g. {"TSLA": 0.5}
    target_volatility: float = Field(0.15, gt=0)  # annualised, as a fraction
    max_volatility_scale: float = Field(2.0, gt=0)  # cap on target / realised
    kelly_fraction: float = Field(0.5, gt=0, le=1)
    max_heat_pct: float = Field(6.0, gt=0, le=100)  # portfolio heat cap
    heat_warn_pct: float = Field(4.5, gt=0, le=100)  # from here new risk is scaled by heat_warn_factor
    heat_warn_factor: float = Field(0.5, ge=0, le=1)
    drawdown_reduce_pct: float = Field(5.0, gt=0, le=100)
    drawdown_reduce_factor: float = Field(0.5, ge=0, le=1)
    drawdown_severe_pct: float = Field(10.0, gt=0, le=100)
    drawdown_severe_factor: float = Field(0.25, ge=0, le=1)
    losing_streak: int = Field(3, gt=0)  # consecutive losing trades
    losing_streak_factor: float = Field(0.5, ge=0, le=1)
    rolling_window: int = Field(20, gt=0)  # trades in the rolling PnL
    rolling_loss_factor: float = Field(0.75, ge=0, le=1)

    @field_validator("regime_multipliers", "symbol_risk_multipliers")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        for k, m in v.items():
            if not (m >= 0 and m != float("inf")):
                raise ValueError(f"multiplier for {k!r} must be finite and >= 0, got {m}")
        return v

    @field_validator("regime_multipliers")
    @classmethod
    def _regime_names(cls, v: dict[str, float]) -> dict[str, float]:
        # Regimes are looked up case-insensitively with "-" / " " read as "_".
        return {regime_key(k): m for k, m in v.items()}

    @model_validator(mode="after")
    def _ordered(self) -> SizingConfig:
        if self.heat_warn_pct > self.max_heat_pct:
            raise ValueError(f"heat_warn_pct {self.heat_warn_pct} > max_heat_pct {self.max_heat_pct}")
        if self.drawdown_reduce_pct > self.drawdown_severe_pct:
            raise ValueError(
                f"drawdown_reduce_pct {self.drawdown_reduce_pct} > "
                f"drawdown_severe_pct {self.drawdown_severe_pct}"
            )
        return self


class RiskConfig(Section):
    max_gross_exposure_pct_intraday: float = Field(50.0, gt=0)
    max_gross_exposure_pct_swing: float = Field(100.0, gt=0)
    exposure: ExposureConfig = Field(default_factory=ExposureConfig)
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    sizing: SizingConfig = Field(default_factory=SizingConfig)

    @model_validator(mode="after")
    def _gross_caps(self) -> RiskConfig:
        for name, caps in self.exposure.books.items():
            seeded = name in ("intraday", "swing")
            if seeded and caps.max_gross_exposure_pct is not None:
                raise ValueError(
                    f"exposure.books.{name}.max_gross_exposure_pct: set max_gross_exposure_pct_{name} instead"
                )
            if not seeded and caps.max_gross_exposure_pct is None:
                raise ValueError(f"exposure.books.{name}.max_gross_exposure_pct is required")
        return self

    def gross_cap_pct(self, book: str) -> float:
        """The gross exposure cap of a book, in % of equity."""
        if book == "intraday":
            return self.max_gross_exposure_pct_intraday
        if book == "swing":
            return self.max_gross_exposure_pct_swing
        cap = self.exposure.books[book].max_gross_exposure_pct
        assert cap is not None  # enforced by _gross_caps
        return cap


# ----------------------------------------------------------------------------------- providers
class PolygonConfig(Section):
    api_key: SecretStr | None = None
    stream_url: str | None = None  # None: the local venue

    @property
    def enabled(self) -> bool:
        return self.api_key is not None


class StreamBackoffConfig(Section):
    """Reconnect delays: exponential with full jitter, uniform(0, min(max_s, initial_s * 2**attempt))."""

    initial_s: float = Field(0.5, gt=0)
    max_s: float = Field(30.0, gt=0)
    # A connection that stayed up this long resets the attempt count (no storm after a flapping link).
    reset_after_s: float = Field(10.0, ge=0)
    # Alpaca 406 (connection limit exceeded): wait at least this long before trying again.
    connection_limit_s: float = Field(60.0, gt=0)


class StreamConfig(Section):
    """The streaming adapter: bar timing, dead-connection detection, failover and queue sizes."""

    every: str = "1m"  # minutes or hours with an Alpaca timeframe (1-59m, 1-23h): backfill asks for it
    # A bar [t, t+every) is closed when the feed clock passes t + every + watermark and, while trades are
    # flowing (a trade frame within the last watermark_ms of wall time), a trade at or after t + every
    # has arrived.
    watermark_ms: int = Field(2000, ge=0)
    flush_interval_ms: int = Field(50, gt=0)  # how often the bar timer looks at the clock (wall time)
    ping_interval_s: float = Field(10.0, gt=0)
    ping_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)  # no frame at all for this long: the socket is dead
    open_timeout_s: float = Field(10.0, gt=0)
    # The primary is failed over when it has been down, or silent while connected, for this long.
    stale_after_s: float = Field(5.0, gt=0)
    # ... or has dropped this many times within stale_after_s (a flapping link is as good as down).
    flap_drops: int = Field(3, gt=0)
    backoff: StreamBackoffConfig = Field(default_factory=StreamBackoffConfig)
    trade_queue: int = Field(1024, gt=0)  # frames; full -> the socket reader waits (trades are never dropped)
    quote_queue: int = Field(256, gt=0)  # frames; full -> the oldest quote frame is dropped and counted
    bar_queue: int = Field(4096, gt=0)  # bar batches; full -> waits (bars are never dropped)
    latency_samples: int = Field(65536, gt=0)
    # When the stream starts, move every object alive (modules, config, models, loaded data) out of the
    # cyclic garbage collector's reach (gc.freeze), so a full collection scans only what was allocated
    # since: over the heap of a process that imported alpaca-py, Polars and pydantic (~140k objects) one
    # full collection stalls the event loop for 40-90 ms. Process-wide; off leaves the GC untouched.
    gc_freeze: bool = True

    @field_validator("every")
    @classmethod
    def _every_has_a_timeframe(cls, v: str) -> str:
        parse_every(v)
        return v


class DataSourcesConfig(Section):
    primary: Literal["alpaca", "polygon"] = "alpaca"
    secondary: list[Literal["alpaca", "polygon"]] = Field(default_factory=lambda: ["polygon"])
    polygon: PolygonConfig = Field(default_factory=PolygonConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)


class AlpacaConfig(Section):
    api_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    paper: bool = True
    feed: Literal["iex", "sip", "delayed_sip", "test"] = "iex"
    # None: the local simulated venue. Real services are one switch away (set the URLs and the keys).
    trading_url: str | None = None
    data_url: str | None = None
    stream_url: str | None = None
    data_sources: DataSourcesConfig = Field(default_factory=DataSourcesConfig)

    @property
    def has_keys(self) -> bool:
        return self.api_key is not None and self.secret_key is not None


class FinnhubConfig(Section):
    api_key: SecretStr | None = None
    url: str | None = None  # None: the local venue

    @property
    def enabled(self) -> bool:
        return self.api_key is not None


# ------------------------------------------------------------------------------- local venue
class FaultConfig(Section):
    """Faults the local venue injects (tests, resilience drills); all off by default."""

    http_429_burst: int = Field(0, ge=0)  # the next N REST requests answer 429 (a rate-limit storm)
    http_5xx_burst: int = Field(0, ge=0)  # the next N REST requests answer http_5xx_status
    http_5xx_status: int = Field(500, ge=500, le=599)
    http_drop_burst: int = Field(0, ge=0)  # the next N REST requests lose their connection, no answer
    burst_after: int = Field(0, ge=0)  # let this many REST requests through before the bursts start
    http_429_reset_s: float = Field(1.0, gt=0)  # an injected 429's X-RateLimit-Reset: now + this
    http_error_rate: float = Field(0.0, ge=0.0, le=1.0)  # share of REST requests answering 5xx at random
    loop_page_token: bool = False  # history endpoints answer with the page token they were given
    latency_ms: float = Field(0.0, ge=0.0)  # added before every REST answer
    stream_drop_after_frames: int | None = Field(None, gt=0)  # close each stream after N data frames
    stream_malformed_every: int | None = Field(None, gt=0)  # every N-th data frame is garbage
    # every N-th data frame also carries a message of a type the provider never sends ("T":"zz" / "ev":"ZZ")
    stream_unknown_every: int | None = Field(None, gt=0)
    # these providers' stream endpoints are down: upgrades answer 503, open sockets are cut
    streams_down: list[Literal["alpaca", "polygon"]] = Field(default_factory=list)
    seed: int = 0


class VenueMarketConfig(Section):
    """What the venue replays: recorded parquet (`path`) or, when None, a synthetic market."""

    path: Path | None = None
    symbols: int = Field(10, gt=0)
    sessions: int = Field(5, gt=0)
    start: str = "2024-01-02"
    seed: int = 0


class VenueConfig(Section):
    host: Literal["127.0.0.1", "localhost", "::1"] = "127.0.0.1"  # loopback only
    port: int = Field(0, ge=0, le=65535)  # 0: pick a free port
    # Replay speed: 1 real time, 60 one market minute per second, "max" as fast as possible.
    speed: float | Literal["max"] = 1.0
    replay_start: str | None = None  # RFC 3339 market time to start at; None: the first session's open
    rate_limit_per_minute: int = Field(200, gt=0)  # per API key, like Alpaca's free plan
    finnhub_rate_limit_per_minute: int = Field(60, gt=0)
    stream_auth_timeout_s: float = Field(10.0, gt=0)
    stream_max_symbols: int = Field(10_000, gt=0)
    stream_connections_per_key: int = Field(1, gt=0)  # Alpaca allows one stream connection per key
    stream_batch: int = Field(1000, gt=0)  # messages per frame at most
    # at a finite speed: wake at most every this many ms and send all that is due in one frame per tape,
    # as a feed server batches (0: a frame as soon as each event is due)
    stream_tick_ms: float = Field(1.0, ge=0)
    cash: float = Field(100_000.0, gt=0)
    impact: bool = True  # fills pay the slippage model's market impact beyond the quote
    history_until_clock: bool = False  # REST history stops at the replay clock (no peeking ahead)
    record_sends: bool = False  # log when each streamed event was sent (GET /venue/sends; for latency)
    market: VenueMarketConfig = Field(default_factory=VenueMarketConfig)
    faults: FaultConfig = Field(default_factory=FaultConfig)

    @field_validator("speed")
    @classmethod
    def _speed_positive(cls, v: float | str) -> float | str:
        if isinstance(v, float) and v <= 0:
            raise ValueError("speed must be > 0 or 'max'")
        return v


# ------------------------------------------------------------------------------------- compute
class ComputeConfig(Section):
    """`compute`: where independent research tasks (training folds, backtest sweeps) run
    (`hybridtrader.tasks.run`): in this process, on a local process pool, or on Ray (the `ray` extra)."""

    backend: Literal["sequential", "pool", "ray"] = "sequential"
    workers: int | None = Field(None, ge=1)  # pool processes / local Ray CPUs; None: the machine's cores
    address: str | None = None  # ray: an existing cluster ("ray://head:10001", "auto"); None: start one here

    @model_validator(mode="after")
    def _address_needs_ray(self) -> ComputeConfig:
        if self.address is not None and self.backend != "ray":
            raise ValueError(f"address is for the ray backend, not {self.backend!r}")
        return self


# ---------------------------------------------------------------------------------- data layer
class DataConfig(Section):
    page_limit: int = Field(10_000, gt=0, le=10_000)  # bars per request (Alpaca's maximum)
    chunk_bars: int = Field(200_000, gt=0)  # split a fetch into time chunks of about this many bars
    max_pages: int = Field(10_000, gt=0)  # per chunk: past this the server is looping, stop
    max_resumes: int = Field(3, ge=0)  # per chunk: restarts from the last bar after a failed page
    shortability_ttl_s: float = Field(3600.0, gt=0)
    earnings_ttl_s: float = Field(86_400.0, gt=0)
    blackout_sessions_before: int = Field(1, ge=0)
    blackout_sessions_after: int = Field(1, ge=0)
    jump_zscore: float = Field(8.0, gt=0)  # quality: robust z-score of a 1-bar return flagged as a jump
    max_abs_log_return: float = Field(0.2, gt=0)  # quality: any 1-bar move larger than this is a jump


# ------------------------------------------------------------------------------------ backtest
class BacktestSynthConfig(Section):
    """The synthetic market a backtest runs on when `backtest.data` is "synth"."""

    symbols: int = Field(10, gt=0)
    sessions: int = Field(20, gt=0)
    start: str = "2024-01-02"
    mean_reversion: float = Field(0.3, ge=0.0, lt=1.0)  # planted 1-minute reversal (0: pure noise)
    trend: float = Field(0.0, ge=0.0, le=10.0)


class BacktestConfig(Section):
    strategies: list[str] = Field(default_factory=lambda: ["intraday_mean_reversion"], min_length=1)
    data: Literal["synth", "store"] = "synth"
    store: Path | None = None  # bar store root; None: <data_dir>/bars
    timeframe: str = "1Min"
    cash: float = Field(100_000.0, gt=0)
    use_models: bool = True  # the MLflow champion when the registry has one; else rules only
    synth: BacktestSynthConfig = Field(default_factory=BacktestSynthConfig)


# ---------------------------------------------------------------------------------------- live
class LiveConfig(Section):
    """`live`: the long-running trader (`hybridtrader live`)."""

    strategies: list[str] = Field(default_factory=lambda: ["intraday_mean_reversion"], min_length=1)
    use_models: bool = True  # the MLflow champion when the registry has one; else rules only
    journal: Path | None = None  # SQLite journal; None: <data_dir>/live/journal.sqlite
    # a reconciliation mismatch beyond tolerance: trade reduce-only, or refuse to start ("fail closed")
    on_mismatch: Literal["reduce_only", "refuse"] = "refuse"
    position_tolerance_shares: float = Field(0.0, ge=0.0)
    model_max_age_days: float = Field(30.0, gt=0)  # an older champion is refused
    max_feed_staleness_s: float = Field(300.0, gt=0)  # the seed's "data stale > 5 minutes": halt entries
    max_execution_lag_s: float = Field(5.0, gt=0)  # an order call slower than this halts entries
    flatten_on_exit: bool = True  # SIGTERM / Ctrl-C: close every position after cancelling open orders
    ops_host: Literal["127.0.0.1", "localhost", "::1"] = "127.0.0.1"
    ops_port: int = Field(0, ge=0, le=65535)  # /metrics, /health, /ready, /status; 0: a free port
    # The local venue (no keys configured): the replayed market and how fast to trade it.
    symbols: int = Field(10, gt=0)
    sessions: int = Field(2, gt=0)
    # market seconds of trading time per wall second (nights skipped); None: the run (training included)
    # ends about duration_s after the command started
    speed: float | None = Field(None, gt=0)
    duration_s: float = Field(60.0, gt=0)
    cash: float = Field(100_000.0, gt=0)
    seed: int = 0
    # Alpaca keys configured: the symbols traded in real time (the local venue trades its market's first
    # `symbols`), and how fast market time passes: 1 is real time; faster only against a local venue
    # serving its market faster than real time (drills, tests), whose trading API's clock is then followed.
    watchlist: list[str] = Field(default_factory=list)
    clock_speed: float = Field(1.0, gt=0)
    # Models (live/champion.py): with no champion in the registry, train one per strategy on the history
    # before the run; after a close, retrain in a separate process when `should_retrain` says so. The
    # node's trainings are small (so the default run stays about a minute): training_rounds boosting
    # rounds, the first training_param_sets sets of ml_training.model.param_grid.
    train_missing_champions: bool = True
    retrain: bool = True
    history_sessions: int = Field(10, ge=1)  # sessions of 1-minute history a training reads
    training_rounds: int = Field(40, ge=1)
    training_param_sets: int = Field(1, ge=1)
    # A replay compresses the night: hold the next open up to this long for a retraining still running
    # (0: never wait; the new champion is swapped in at whichever bar boundary it is ready by).
    retrain_wait_s: float = Field(0.0, ge=0)


# ------------------------------------------------------------------------------------- portfolio
Schedule = Literal["daily", "weekly", "monthly"]


class StrategyBoundsConfig(Section):
    """Weight bounds of one strategy, as shares of equity."""

    min_weight: float = Field(0.0, ge=0.0, le=1.0)
    max_weight: float = Field(1.0, gt=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> StrategyBoundsConfig:
        if self.min_weight > self.max_weight:
            raise ValueError(f"min_weight {self.min_weight} > max_weight {self.max_weight}")
        return self


class AllocationConfig(Section):
    """`portfolio.allocation`: how equity is split between strategies (hybridtrader.CapitalAllocator)."""

    method: Literal["equal_weight", "inverse_volatility", "risk_parity", "kelly"] = "risk_parity"
    min_weight: float = Field(0.0, ge=0.0, le=1.0)  # default bounds of every strategy, shares of equity
    max_weight: float = Field(1.0, gt=0.0)
    bounds: dict[str, StrategyBoundsConfig] = Field(default_factory=dict)  # per-strategy overrides
    # Sum of |target - current| weights moved in one rebalance at most (None: unlimited).
    max_turnover: float | None = Field(0.5, gt=0.0)
    ewma_half_life_days: float = Field(30.0, gt=0.0)  # lambda = 0.5 ** (1 / half_life) (30 -> 0.977)
    min_history_days: int = Field(20, ge=2)  # fewer daily returns: the strategy is on probation
    max_history_days: int = Field(1260, ge=2)  # daily returns kept per strategy (5 years)
    rebalance_band: float = Field(0.05, gt=0.0)  # a weight this far (share of equity) from target
    rebalance_schedule: Schedule = "weekly"
    vol_target: float | None = Field(None, gt=0.0)  # annualised book volatility; None: no overlay
    leverage_cap: float = Field(1.0, gt=0.0)  # sum of weights at most
    kelly_fraction: float = Field(0.5, gt=0.0, le=1.0)
    risk_free_rate: float = Field(0.0, ge=0.0, lt=1.0)  # annual, for Kelly's excess return
    periods_per_year: int = Field(252, gt=0)  # daily returns -> annual volatility
    tolerance: float = Field(1e-10, gt=0.0, lt=1e-3)  # risk parity: max relative risk-budget error
    state_path: Path | None = None  # None: <data_dir>/portfolio/allocator.json
    # The engine splits equity between its strategies by `method` at session opens (each sizes and caps its
    # gross exposure against its capital); off: every strategy trades against the whole account.
    in_engine: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> AllocationConfig:
        if self.min_weight > self.max_weight:
            raise ValueError(f"min_weight {self.min_weight} > max_weight {self.max_weight}")
        if self.min_history_days > self.max_history_days:
            raise ValueError(
                f"min_history_days {self.min_history_days} > max_history_days {self.max_history_days}")
        return self


class UniverseConfig(Section):
    """`portfolio.universe`: the selection filters and the rotation tracker (UniverseRotationTracker)."""

    timeframe: str = "1Day"  # bars read from the bar store for the filters
    lookback_sessions: int = Field(20, ge=1)  # window of the liquidity and quality filters
    min_dollar_volume: float = Field(5_000_000.0, ge=0.0)  # average daily close x volume, account currency
    min_price: float = Field(5.0, ge=0.0)  # last close
    max_price: float | None = Field(None, gt=0.0)
    require_easy_to_borrow: bool = False  # for strategies that short: shortable is always required
    max_missing_share: float = Field(0.1, ge=0.0, le=1.0)  # quality: share of expected bars absent
    max_symbols: int | None = Field(None, gt=0)  # keep the most liquid N
    min_retention_sessions: int = Field(5, ge=0)  # a symbol stays at least this many sessions
    rotation_schedule: Schedule = "weekly"
    stability_window: int = Field(20, ge=1)  # universe updates the stability score looks back over
    max_events: int = Field(10_000, ge=1)  # addition/removal records kept in the history file
    history_path: Path | None = None  # None: <data_dir>/portfolio/universe.json
    # The engine trades only the rotated universe (backtest: selected from the bar store's `timeframe` bars
    # as of the previous session; needs backtest.data=store); off: every symbol of the feed.
    in_engine: bool = False


class PortfolioConfig(Section):
    allocation: AllocationConfig = Field(default_factory=AllocationConfig)
    universe: UniverseConfig = Field(default_factory=UniverseConfig)


class Config(Section):
    data_dir: Path = Path("hybridtrader-data")
    ml_training: MLTrainingConfig = Field(default_factory=MLTrainingConfig)
    strategies: dict[str, StrategyConfig] = Field(default_factory=_default_strategies)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    alpaca: AlpacaConfig = Field(default_factory=AlpacaConfig)
    finnhub: FinnhubConfig = Field(default_factory=FinnhubConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    venue: VenueConfig = Field(default_factory=VenueConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    portfolio: PortfolioConfig = Field(default_factory=PortfolioConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)

    @field_validator("strategies", mode="before")
    @classmethod
    def _merge_default_strategies(cls, raw: Any) -> Any:
        # Setting one key of a seed strategy keeps its other keys and the other strategy; a strategy is
        # switched off with `enabled: false`.
        return merge_defaults(_DEFAULT_STRATEGIES, raw)

    def masked(self) -> dict[str, Any]:
        """The resolved configuration as plain data, secrets shown as '**********'."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------------------- loading
def _substitute(node: Any, loc: tuple[Any, ...], unset: list[str], stack: tuple[int, ...] = ()) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string.

    A whole value that is an unset variable without default becomes None where the key accepts None (a
    secret: its provider is then disabled) and is an error elsewhere.
    """
    if isinstance(node, dict | list):
        # YAML aliases may build a structure that contains itself; no config value can be infinite.
        if id(node) in stack:
            raise ConfigError(f"config error at {_path(loc)}: a YAML alias refers to itself (recursive)")
        stack = (*stack, id(node))
        if isinstance(node, dict):
            return {k: _substitute(v, (*loc, k), unset, stack) for k, v in node.items()}
        return [_substitute(v, (*loc, i), unset, stack) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node
    path = _path(loc)
    whole = _VAR.fullmatch(node)
    if whole and whole.group(1) not in os.environ and whole.group(2) is None:
        annotation = _resolve(loc)[1]
        if annotation is not None and type(None) not in get_args(annotation):  # unknown keys: reported later
            raise ConfigError(f"config error at {path}: environment variable {whole.group(1)} is not set")
        unset.append(f"{path} (${{{whole.group(1)}}})")
        return None

    def value(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"config error at {path}: environment variable {name} is not set (in {node!r})")

    return _VAR.sub(value, node)


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X (the first non-None member of a union)."""
    if get_origin(annotation) in (Union, UnionType):
        return next(a for a in get_args(annotation) if a is not type(None))
    return annotation


def _resolve(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, Any]:
    """The section holding the last key of an error location, and that key's annotation (None if unknown)."""
    node: Any = Config
    parent: type[BaseModel] | None = None
    for part in loc:
        node, parent = _unwrap(node), None
        if isinstance(node, type) and issubclass(node, BaseModel):
            parent = node
            field = node.model_fields.get(str(part))
            node = field.annotation if field is not None else None
        elif get_origin(node) in (dict, list):
            node = get_args(node)[-1] if get_args(node) else None
        else:
            return None, None
    return parent, node


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "<root>"


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        parent, annotation = _resolve(loc)
        got = e.get("input")
        if _unwrap(annotation) is SecretStr:
            got = "**********"  # never echo a secret, even an invalid one
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(parent.model_fields) if parent is not None else "none"
            lines.append(f"config error at {_path(loc)}: unknown key (allowed keys here: {allowed})")
            continue
        lines.append(f"config error at {_path(loc)}: {e['msg']} (got {got!r})")
    return "; ".join(lines)  # one line, as the CLI reports errors


def config_from_dict(raw: dict[str, Any] | None) -> Config:
    """Validate already-parsed configuration data (after substitution) into a `Config`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config error at <root>: expected a mapping, got {type(raw).__name__}")
    unset: list[str] = []
    data = _substitute(raw, (), unset)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format(e)) from None
    for where in unset:
        log.warning("config: %s is not set; the feature that needs it is disabled", where)
    return cfg


ConfigLike = Config | Section | Mapping[str, Any] | str | os.PathLike[str] | None


def config_section(config: ConfigLike, path: str) -> Any:
    """The section at the dotted `path` (`"risk"`, `"execution.slippage"`; `""` for the whole `Config`) of
    whatever a caller holds: a `Config`; that section or one above it on the path (an `ExecutionConfig`
    for `execution.slippage`); a mapping (a whole config's data, or just the section's own keys); a YAML
    file path; or None (the defaults). Of a mapping only the top section on the path is validated (the
    other sections belong to their users; a bad value is a ConfigError naming its full key path,
    `risk.exposure...`); with `path=""` the whole mapping is. Any other type is a TypeError."""
    keys = path.split(".") if path else []
    kinds: list[type[BaseModel]] = [Config]
    for key in keys:
        kinds.append(kinds[-1].model_fields[key].annotation)  # type: ignore[arg-type]
    depth = next((i for i, kind in enumerate(kinds) if isinstance(config, kind)), None)
    if depth is not None:
        node: Any = config
    elif config is None:
        node, depth = Config(), 0
    elif isinstance(config, str | os.PathLike):
        node, depth = load_config(config), 0
    elif isinstance(config, Mapping):
        data: dict[str, Any] = dict(config)
        if keys and keys[0] in data:  # a whole config's data: only the top section on the path is read
            data = {keys[0]: data[keys[0]]}
        elif keys and data and set(data) <= set(kinds[-1].model_fields):
            for key in reversed(keys):  # just the section's keys: nest them under its path
                data = {key: data}
        elif keys:
            data = {}  # a config without this section (its other sections belong to their users)
        node, depth = config_from_dict(data), 0
    else:
        kind = f"{kinds[-1].__name__}, " if keys else ""
        raise TypeError(f"config must be a Config, {kind}mapping, path or None, got {type(config).__name__}")
    for key in keys[depth:]:
        node = getattr(node, key)
    return node


def as_config(config: ConfigLike) -> Config:
    """The whole `Config` of what a caller holds (see `config_section`)."""
    return config_section(config, "")


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate the YAML config at `path` (or $HYBRIDTRADER_CONFIG); no file means all defaults."""
    if path is None:
        path = os.environ.get(ENV_PATH)
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        bad = e.object[e.start]
        raise ConfigError(f"config file {p} is not UTF-8 text (byte {e.start} is {bad:#04x})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"config file {p}{where}: not valid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p}: not valid YAML: {' '.join(str(e).split())}") from None
    try:
        return config_from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


def with_overrides(config: Config, overrides: Mapping[str, Any] | Sequence[str]) -> Config:
    """`config` with overrides merged in and validated like a file; a bad value is a ConfigError naming the
    key path. `overrides` is nested (`{"venue": {"port": 8080}}`, as command-line options build it) or a list
    of `key.path=value` assignments (`--set`; values parsed as YAML: `risk.sizing.risk_per_trade_pct=0.5`,
    `backtest.strategies=[a, b]`)."""
    if isinstance(overrides, Mapping):
        return config_from_dict(merge_defaults(config.model_dump(), overrides))
    raw = config.model_dump()
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        parts = key.strip().split(".")
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"config error at {where}: unknown key (from --set {item!r})")
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"config error at {key}: not a section (from --set {item!r})")
        try:
            node[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
    return config_from_dict(raw)
